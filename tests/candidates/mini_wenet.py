"""A small stand-in for the WeNet conformer encoder and attention-rescoring decoder.

Written from WeNet's 2022 sources (wenet/transformer/*, wenet/bin/export_onnx_gpu.py)
so the passes can be developed and tested without the workload package; it is a
second, independently written export of the same architecture, which is also what
"survives a re-export" means for the passes. Exported with the legacy TorchScript
exporter (dynamo=False) at opset 13 ("contest" style) or 17 (LayerNormalization).
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

D, HEADS, FF, VOCAB, KERNEL = 32, 4, 64, 23, 7
PE_ROWS = 500             # positional-encoding table rows (WeNet: 5000)
FEAT = 80


def make_pad_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    seq = torch.arange(0, max_len, dtype=torch.int64, device=lengths.device)
    return seq.unsqueeze(0).expand(lengths.size(0), max_len) >= lengths.unsqueeze(-1)


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class FFN(nn.Module):
    def __init__(self):
        super().__init__()
        self.w_1, self.w_2, self.activation = nn.Linear(D, FF), nn.Linear(FF, D), Swish()

    def forward(self, x):
        return self.w_2(self.activation(self.w_1(x)))


class MHA(nn.Module):
    def __init__(self):
        super().__init__()
        self.h, self.d_k = HEADS, D // HEADS
        self.linear_q, self.linear_k = nn.Linear(D, D), nn.Linear(D, D)
        self.linear_v, self.linear_out = nn.Linear(D, D), nn.Linear(D, D)

    def forward_qkv(self, q, k, v):
        b = q.size(0)
        q = self.linear_q(q).view(b, -1, self.h, self.d_k).transpose(1, 2)
        k = self.linear_k(k).view(b, -1, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(v).view(b, -1, self.h, self.d_k).transpose(1, 2)
        return q, k, v

    def forward_attention(self, value, scores, mask):
        b = value.size(0)
        mask = mask.unsqueeze(1).eq(0)
        scores = scores.masked_fill(mask, -float("inf"))
        attn = torch.softmax(scores, dim=-1).masked_fill(mask, 0.0)
        x = torch.matmul(attn, value)
        x = x.transpose(1, 2).contiguous().view(b, -1, self.h * self.d_k)
        return self.linear_out(x)

    def forward(self, q, k, v, mask, pos_emb=None):
        q, k, v = self.forward_qkv(q, k, v)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        return self.forward_attention(v, scores, mask)


class RelMHA(MHA):
    def __init__(self):
        super().__init__()
        self.linear_pos = nn.Linear(D, D, bias=False)
        self.pos_bias_u = nn.Parameter(torch.randn(self.h, self.d_k) * 0.1)
        self.pos_bias_v = nn.Parameter(torch.randn(self.h, self.d_k) * 0.1)

    def forward(self, q, k, v, mask, pos_emb=None):
        q, k, v = self.forward_qkv(q, k, v)
        q = q.transpose(1, 2)
        p = self.linear_pos(pos_emb).view(pos_emb.size(0), -1, self.h, self.d_k).transpose(1, 2)
        ac = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))
        bd = torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1))
        return self.forward_attention(v, (ac + bd) / math.sqrt(self.d_k), mask)


class ConvModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.pointwise_conv1 = nn.Conv1d(D, 2 * D, 1)
        self.depthwise_conv = nn.Conv1d(D, D, KERNEL, padding=(KERNEL - 1) // 2, groups=D)
        self.norm = nn.BatchNorm1d(D)
        self.pointwise_conv2 = nn.Conv1d(D, D, 1)
        self.activation = Swish()

    def forward(self, x, mask_pad):
        x = x.transpose(1, 2)
        x = x.masked_fill(~mask_pad, 0.0)
        x = nn.functional.glu(self.pointwise_conv1(x), dim=1)
        x = self.pointwise_conv2(self.activation(self.norm(self.depthwise_conv(x))))
        x = x.masked_fill(~mask_pad, 0.0)
        return x.transpose(1, 2)


class ConformerLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn, self.feed_forward, self.feed_forward_macaron = RelMHA(), FFN(), FFN()
        self.conv_module = ConvModule()
        for n in ("norm_ff", "norm_mha", "norm_ff_macaron", "norm_conv", "norm_final"):
            setattr(self, n, nn.LayerNorm(D, eps=1e-5))

    def forward(self, x, mask, pos_emb, mask_pad):
        x = x + 0.5 * self.feed_forward_macaron(self.norm_ff_macaron(x))
        y = self.norm_mha(x)
        x = x + self.self_attn(y, y, y, mask, pos_emb)
        x = x + self.conv_module(self.norm_conv(x), mask_pad)
        x = x + 0.5 * self.feed_forward(self.norm_ff(x))
        return self.norm_final(x)


class RelPositionalEncoding(nn.Module):
    def __init__(self, max_len: int | None = None):
        max_len = max_len or PE_ROWS
        super().__init__()
        self.xscale = math.sqrt(D)
        pe = torch.zeros(max_len, D)
        pos = torch.arange(0, max_len, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, D, 2, dtype=torch.float32) * -(math.log(10000.0) / D))
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        self.register_buffer("pe", pe.unsqueeze(0))

    def forward(self, x):
        return x * self.xscale, self.pe[:, 0:x.size(1)]


class Subsampling(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, D, 3, 2), nn.ReLU(), nn.Conv2d(D, D, 3, 2), nn.ReLU())
        self.out = nn.Sequential(nn.Linear(D * (((FEAT - 1) // 2 - 1) // 2), D))
        self.pos_enc = RelPositionalEncoding()

    def forward(self, x, mask):
        x = self.conv(x.unsqueeze(1))
        b, c, t, f = x.size()
        x = self.out(x.transpose(1, 2).contiguous().view(b, t, c * f))
        x, pos = self.pos_enc(x)
        return x, pos, mask[:, :, :-2:2][:, :, :-2:2]


class CMVN(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.randn(FEAT) * 0.1)
        self.register_buffer("istd", 1.0 + torch.rand(FEAT))

    def forward(self, x):
        return (x - self.mean) * self.istd


class Encoder(nn.Module):
    def __init__(self, blocks: int = 2):
        super().__init__()
        self.global_cmvn, self.embed = CMVN(), Subsampling()
        self.encoders = nn.ModuleList(ConformerLayer() for _ in range(blocks))
        self.after_norm = nn.LayerNorm(D, eps=1e-5)

    def forward(self, xs, lens):
        masks = ~make_pad_mask(lens, xs.size(1)).unsqueeze(1)
        xs, pos, masks = self.embed(self.global_cmvn(xs), masks)
        for layer in self.encoders:
            xs = layer(xs, masks, pos, masks)
        return self.after_norm(xs), masks


class EncoderWrapper(nn.Module):
    """export_onnx_gpu.py's Encoder, with the two outputs the contest kept."""

    def __init__(self, blocks: int = 2):
        super().__init__()
        self.encoder = Encoder(blocks)

    def forward(self, speech, speech_lengths):
        out, mask = self.encoder(speech, speech_lengths)
        return out, mask.squeeze(1).sum(1).int()


class PositionalEncoding(RelPositionalEncoding):
    def forward(self, x):
        return x * self.xscale + self.pe[:, 0:x.size(1)]


class DecoderLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn, self.src_attn, self.feed_forward = MHA(), MHA(), FFN()
        self.feed_forward.activation = nn.ReLU()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(D, eps=1e-5) for _ in range(3))

    def forward(self, x, tgt_mask, memory, memory_mask):
        y = self.norm1(x)
        x = x + self.self_attn(y, y, y, tgt_mask)
        y = self.norm2(x)
        x = x + self.src_attn(y, memory, memory, memory_mask)
        return x + self.feed_forward(self.norm3(x))


class Decoder(nn.Module):
    def __init__(self, blocks: int = 2):
        super().__init__()
        self.embed = nn.Sequential(nn.Embedding(VOCAB, D), PositionalEncoding())
        self.decoders = nn.ModuleList(DecoderLayer() for _ in range(blocks))
        self.after_norm = nn.LayerNorm(D, eps=1e-5)
        self.output_layer = nn.Linear(D, VOCAB)

    def forward(self, memory, memory_mask, ys, ys_lens):
        maxlen = ys.size(1)
        tgt_mask = ~make_pad_mask(ys_lens, maxlen).unsqueeze(1)
        ar = torch.arange(maxlen)  # WeNet's subsequent_mask
        m = (ar.expand(maxlen, maxlen) <= ar.unsqueeze(-1)).unsqueeze(0)
        tgt_mask = tgt_mask & m
        x = self.embed(ys)
        for layer in self.decoders:
            x = layer(x, tgt_mask, memory, memory_mask)
        return self.output_layer(self.after_norm(x))


class DecoderWrapper(nn.Module):
    """export_onnx_gpu.py's Decoder (attention rescoring, no right-to-left decoder)."""

    def __init__(self, blocks: int = 2, beam: int = 10, ctc_weight: float = 0.5):
        super().__init__()
        self.decoder, self.beam, self.ctc_weight = Decoder(blocks), beam, ctc_weight

    def forward(self, encoder_out, encoder_out_lens, hyps_pad_sos_eos, hyps_lens_sos, ctc_score):
        B, T, F = encoder_out.shape
        bz = self.beam
        B2 = B * bz
        encoder_out = encoder_out.repeat(1, bz, 1).view(B2, T, F)
        encoder_mask = ~make_pad_mask(encoder_out_lens, T).unsqueeze(1)
        encoder_mask = encoder_mask.repeat(1, bz, 1).view(B2, 1, T)
        T2 = hyps_pad_sos_eos.shape[2] - 1
        hyps_pad = hyps_pad_sos_eos.long().view(B2, T2 + 1)
        hyps_lens = hyps_lens_sos.view(B2,)
        hyps_pad_sos = hyps_pad[:, :-1].contiguous()
        hyps_pad_eos = hyps_pad[:, 1:].contiguous()
        decoder_out = self.decoder(encoder_out, encoder_mask, hyps_pad_sos, hyps_lens)
        decoder_out = torch.nn.functional.log_softmax(decoder_out, dim=-1)
        V = decoder_out.shape[-1]
        decoder_out = decoder_out.view(B2, T2, V)
        mask = ~make_pad_mask(hyps_lens, T2)
        index = torch.unsqueeze(hyps_pad_eos * mask, 2)
        score = decoder_out.gather(2, index).squeeze(2)
        score = score * mask
        decoder_out = decoder_out.view(B, bz, T2, V)
        score = torch.sum(score, axis=1)
        score = torch.reshape(score, (B, bz)) + self.ctc_weight * ctc_score
        best_index = torch.argmax(score, dim=1)
        return decoder_out, best_index.int()


def _randomize_norms(model: nn.Module) -> None:
    # Trained-looking statistics and affine parameters (identical default values
    # would also let the exporter deduplicate them into Identity nodes).
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            m.weight.data.copy_(1.0 + 0.1 * torch.randn(m.weight.shape, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(1.0 + torch.rand(m.num_features, generator=g))


def export(model_name: str, path: Path, opset: int = 13, blocks: int = 2, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    if model_name == "encoder":
        model = EncoderWrapper(blocks)
        args = (torch.randn(2, 50, FEAT), torch.tensor([50, 37], dtype=torch.int32))
        names_in, names_out = ["speech", "speech_lengths"], ["encoder_out", "encoder_out_lens"]
        axes = {"speech": {0: "B", 1: "T"}, "speech_lengths": {0: "B"}, "encoder_out": {0: "B", 1: "T_OUT"},
                "encoder_out_lens": {0: "B"}}
    else:
        model = DecoderWrapper(blocks)
        args = (torch.randn(2, 11, D), torch.tensor([11, 7], dtype=torch.int32),
                torch.randint(0, VOCAB, (2, 10, 64), dtype=torch.int64).int(),
                torch.randint(1, 64, (2, 10), dtype=torch.int32), torch.randn(2, 10))
        names_in = ["encoder_out", "encoder_out_lens", "hyps_pad_sos_eos", "hyps_lens_sos", "ctc_score"]
        names_out = ["decoder_out", "best_index"]
        axes = {"encoder_out": {0: "B", 1: "T"}, "encoder_out_lens": {0: "B"}, "hyps_pad_sos_eos": {0: "B"},
                "hyps_lens_sos": {0: "B"}, "ctc_score": {0: "B"}, "decoder_out": {0: "B"}, "best_index": {0: "B"}}
    _randomize_norms(model)
    model.eval()
    path = Path(path)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notices
        torch.onnx.export(model, args, str(path), opset_version=opset, dynamo=False, do_constant_folding=True,
                          input_names=names_in, output_names=names_out, dynamic_axes=axes)
    return path


def make_inputs(model_name: str, batch: int, frames: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random feeds with a padded batch: row 0 full length, the others shorter."""
    rng = np.random.default_rng(seed)
    lens = np.array([frames] + list(rng.integers(max(7, frames // 2), frames + 1, batch - 1)), dtype=np.int32)
    if model_name == "encoder":
        return {"speech": rng.standard_normal((batch, frames, FEAT)).astype(np.float32), "speech_lengths": lens}
    t = frames
    enc_lens = np.array([t] + list(rng.integers(1, t + 1, batch - 1)), dtype=np.int32)
    return {
        "encoder_out": rng.standard_normal((batch, t, D)).astype(np.float32),
        "encoder_out_lens": enc_lens,
        "hyps_pad_sos_eos": rng.integers(0, VOCAB, (batch, 10, 64)).astype(np.int32),
        "hyps_lens_sos": rng.integers(1, 64, (batch, 10)).astype(np.int32),
        "ctc_score": rng.standard_normal((batch, 10)).astype(np.float32),
    }
