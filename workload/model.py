"""The WeNet conformer encoder and transformer decoder in PyTorch (inference only).

Written from WeNet's 2022 sources (wenet/transformer/*.py) so that
- the module tree gives WeNet's checkpoint keys (`encoder.encoders.3.self_attn.linear_q.weight`, ...),
  so a real AISHELL-1 checkpoint loads (see workload/checkpoint.py);
- the ONNX graph has the contest model's patterns: rel-pos attention without rel_shift,
  decomposed LayerNorm at opset 13, Sigmoid*Mul swish, masks built from lengths.
No dropout (inference only), no streaming/chunk paths, no right-to-left decoder.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from workload.model_config import ModelConfig, default_cmvn

__all__ = ["ModelConfig", "AsrModel", "build_model", "make_pad_mask"]


def make_pad_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """True at padded positions: [B, max_len] from lengths [B] (as wenet.utils.mask)."""
    positions = torch.arange(0, max_len, dtype=torch.int64, device=lengths.device)
    positions = positions.unsqueeze(0).expand(lengths.size(0), max_len)
    return positions >= lengths.unsqueeze(-1)


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class GlobalCMVN(nn.Module):
    def __init__(self, feature_dim: int):
        super().__init__()
        mean, istd = default_cmvn(feature_dim)
        self.register_buffer("mean", torch.from_numpy(mean))
        self.register_buffer("istd", torch.from_numpy(istd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.istd


def _sinusoid_table(rows: int, dim: int) -> torch.Tensor:
    position = torch.arange(0, rows, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
    table = torch.zeros(rows, dim)
    table[:, 0::2] = torch.sin(position * div_term)
    table[:, 1::2] = torch.cos(position * div_term)
    return table.unsqueeze(0)  # [1, rows, dim]


class PositionalEncoding(nn.Module):
    """Absolute encoding (decoder): x * sqrt(d) + pe[:T]."""

    def __init__(self, dim: int, rows: int):
        super().__init__()
        self.xscale = math.sqrt(dim)
        # Not a checkpoint key in WeNet (a plain attribute there): non-persistent.
        self.register_buffer("pe", _sinusoid_table(rows, dim), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.xscale + self.pe[:, : x.size(1)]


class RelPositionalEncoding(PositionalEncoding):
    """Relative encoding (encoder): returns x * sqrt(d) and the table rows pe[:T] separately."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return x * self.xscale, self.pe[:, : x.size(1)]


class Conv2dSubsampling4(nn.Module):
    """Two 3x3 stride-2 Conv2d + ReLU, then Linear(d * bins -> d) and the rel-pos encoding."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.conv = nn.Sequential(nn.Conv2d(1, d, 3, 2), nn.ReLU(), nn.Conv2d(d, d, 3, 2), nn.ReLU())
        self.out = nn.Sequential(nn.Linear(d * cfg.subsampled_bins, d))
        self.pos_enc = RelPositionalEncoding(d, cfg.pos_table_rows)

    def forward(self, x: torch.Tensor, mask: torch.Tensor):
        x = self.conv(x.unsqueeze(1))                       # [B, d, T', bins]
        b, c, t, f = x.size()
        x = self.out(x.transpose(1, 2).contiguous().view(b, t, c * f))
        x, pos_emb = self.pos_enc(x)
        # The mask follows the convolutions' frame positions (WeNet's slicing, not arithmetic).
        return x, pos_emb, mask[:, :, :-2:2][:, :, :-2:2]


class MultiHeadedAttention(nn.Module):
    def __init__(self, heads: int, dim: int):
        super().__init__()
        self.d_k = dim // heads
        self.h = heads
        self.linear_q = nn.Linear(dim, dim)
        self.linear_k = nn.Linear(dim, dim)
        self.linear_v = nn.Linear(dim, dim)
        self.linear_out = nn.Linear(dim, dim)

    def _heads(self, linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        return linear(x).view(x.size(0), -1, self.h, self.d_k).transpose(1, 2)  # [B, h, T, d_k]

    def _attend(self, v: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # mask: [B, 1, T2] or [B, T1, T2], True = may attend. Fully masked rows give zeros, not NaN.
        masked = mask.unsqueeze(1).eq(0)
        scores = scores.masked_fill(masked, -float("inf"))
        attn = torch.softmax(scores, dim=-1).masked_fill(masked, 0.0)
        x = torch.matmul(attn, v).transpose(1, 2).contiguous().view(v.size(0), -1, self.h * self.d_k)
        return self.linear_out(x)

    def forward(self, query, key, value, mask):
        q, k, v = self._heads(self.linear_q, query), self._heads(self.linear_k, key), self._heads(self.linear_v, value)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        return self._attend(v, scores, mask)


class RelPositionMultiHeadedAttention(MultiHeadedAttention):
    """Transformer-XL style scores (matrix_ac + matrix_bd), without rel_shift as in WeNet."""

    def __init__(self, heads: int, dim: int):
        super().__init__(heads, dim)
        self.linear_pos = nn.Linear(dim, dim, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(heads, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(heads, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def forward(self, query, key, value, mask, pos_emb):  # type: ignore[override]
        q = self._heads(self.linear_q, query).transpose(1, 2)   # [B, T1, h, d_k]
        k, v = self._heads(self.linear_k, key), self._heads(self.linear_v, value)
        p = self.linear_pos(pos_emb).view(pos_emb.size(0), -1, self.h, self.d_k).transpose(1, 2)
        q_u = (q + self.pos_bias_u).transpose(1, 2)               # [B, h, T1, d_k]
        q_v = (q + self.pos_bias_v).transpose(1, 2)
        matrix_ac = torch.matmul(q_u, k.transpose(-2, -1))
        matrix_bd = torch.matmul(q_v, p.transpose(-2, -1))
        scores = (matrix_ac + matrix_bd) / math.sqrt(self.d_k)
        return self._attend(v, scores, mask)


class PositionwiseFeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, activation: nn.Module):
        super().__init__()
        self.w_1 = nn.Linear(dim, hidden)
        self.activation = activation
        self.w_2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.activation(self.w_1(x)))


class ConvolutionModule(nn.Module):
    """Pointwise conv + GLU, depthwise conv + BatchNorm + swish, pointwise conv; padding zeroed."""

    def __init__(self, dim: int, kernel: int):
        super().__init__()
        self.pointwise_conv1 = nn.Conv1d(dim, 2 * dim, 1)
        self.depthwise_conv = nn.Conv1d(dim, dim, kernel, padding=(kernel - 1) // 2, groups=dim)
        self.norm = nn.BatchNorm1d(dim)
        self.pointwise_conv2 = nn.Conv1d(dim, dim, 1)
        self.activation = Swish()

    def forward(self, x: torch.Tensor, mask_pad: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2).masked_fill(~mask_pad, 0.0)         # [B, C, T]; mask_pad [B, 1, T]
        x = nn.functional.glu(self.pointwise_conv1(x), dim=1)
        x = self.activation(self.norm(self.depthwise_conv(x)))
        x = self.pointwise_conv2(x).masked_fill(~mask_pad, 0.0)
        return x.transpose(1, 2)


class ConformerEncoderLayer(nn.Module):
    """Macaron FFN (x0.5), rel-pos MHA, conv module, FFN (x0.5), final norm; all pre-norm."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.self_attn = RelPositionMultiHeadedAttention(cfg.heads, d)
        self.feed_forward = PositionwiseFeedForward(d, cfg.encoder_ffn, Swish())
        self.feed_forward_macaron = PositionwiseFeedForward(d, cfg.encoder_ffn, Swish())
        self.conv_module = ConvolutionModule(d, cfg.cnn_kernel)
        self.norm_ff = nn.LayerNorm(d, eps=1e-5)
        self.norm_mha = nn.LayerNorm(d, eps=1e-5)
        self.norm_ff_macaron = nn.LayerNorm(d, eps=1e-5)
        self.norm_conv = nn.LayerNorm(d, eps=1e-5)
        self.norm_final = nn.LayerNorm(d, eps=1e-5)
        self.ff_scale = 0.5

    def forward(self, x, mask, pos_emb, mask_pad):
        x = x + self.ff_scale * self.feed_forward_macaron(self.norm_ff_macaron(x))
        h = self.norm_mha(x)
        x = x + self.self_attn(h, h, h, mask, pos_emb)
        x = x + self.conv_module(self.norm_conv(x), mask_pad)
        x = x + self.ff_scale * self.feed_forward(self.norm_ff(x))
        return self.norm_final(x)


class ConformerEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.global_cmvn = GlobalCMVN(cfg.feature_dim)
        self.embed = Conv2dSubsampling4(cfg)
        self.encoders = nn.ModuleList([ConformerEncoderLayer(cfg) for _ in range(cfg.encoder_blocks)])
        self.after_norm = nn.LayerNorm(cfg.d_model, eps=1e-5)

    def forward(self, xs: torch.Tensor, xs_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """xs [B, T, F], xs_lens [B] -> (encoder_out [B, T', d], mask [B, 1, T'] bool)."""
        masks = ~make_pad_mask(xs_lens, xs.size(1)).unsqueeze(1)   # [B, 1, T]
        xs = self.global_cmvn(xs)
        xs, pos_emb, masks = self.embed(xs, masks)
        for layer in self.encoders:
            xs = layer(xs, masks, pos_emb, masks)
        return self.after_norm(xs), masks


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.self_attn = MultiHeadedAttention(cfg.heads, d)
        self.src_attn = MultiHeadedAttention(cfg.heads, d)
        self.feed_forward = PositionwiseFeedForward(d, cfg.decoder_ffn, nn.ReLU())
        self.norm1 = nn.LayerNorm(d, eps=1e-5)
        self.norm2 = nn.LayerNorm(d, eps=1e-5)
        self.norm3 = nn.LayerNorm(d, eps=1e-5)

    def forward(self, x, tgt_mask, memory, memory_mask):
        h = self.norm1(x)
        x = x + self.self_attn(h, h, h, tgt_mask)
        x = x + self.src_attn(self.norm2(x), memory, memory, memory_mask)
        return x + self.feed_forward(self.norm3(x))


class TransformerDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.embed = nn.Sequential(nn.Embedding(cfg.vocab, d), PositionalEncoding(d, cfg.pos_table_rows))
        self.decoders = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.decoder_blocks)])
        self.after_norm = nn.LayerNorm(d, eps=1e-5)
        self.output_layer = nn.Linear(d, cfg.vocab)

    def forward(self, memory, memory_mask, ys_in_pad, ys_in_lens) -> torch.Tensor:
        """memory [N, T, d], memory_mask [N, 1, T], tokens [N, L], lengths [N] -> logits [N, L, V]."""
        length = ys_in_pad.size(1)
        tgt_mask = ~make_pad_mask(ys_in_lens, length).unsqueeze(1)                 # [N, 1, L]
        # Causal mask from arange comparisons (tril has no ONNX op before opset 14).
        steps = torch.arange(length, device=tgt_mask.device)
        causal = steps.expand(length, length) <= steps.unsqueeze(-1)              # [L, L] lower triangle
        tgt_mask = tgt_mask & causal.unsqueeze(0)                                  # [N, L, L]
        x = self.embed(ys_in_pad)
        for layer in self.decoders:
            x = layer(x, tgt_mask, memory, memory_mask)
        return self.output_layer(self.after_norm(x))


class CTC(nn.Module):
    """Only its projection: part of the checkpoint, not of the exported graphs."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ctc_lo = nn.Linear(cfg.d_model, cfg.vocab)


class AsrModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.encoder = ConformerEncoder(cfg)
        self.decoder = TransformerDecoder(cfg)
        self.ctc = CTC(cfg)


def _perturb_norms(model: AsrModel) -> None:
    """Non-trivial LayerNorm/BatchNorm parameters and BatchNorm statistics.

    Default ones (gamma 1, beta 0, mean 0, var 1) would hide a graph pass that
    drops or misplaces them. Uses the caller's seeded RNG.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.LayerNorm, nn.BatchNorm1d)):
                m.weight.normal_(1.0, 0.1)
                m.bias.normal_(0.0, 0.05)
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 2.0)


def build_model(config: ModelConfig | None = None, seed: int = 0) -> AsrModel:
    """The model with weights fixed by `seed` (PyTorch default init), in eval mode, on CPU.

    The global torch RNG is left as it was.
    """
    cfg = config or ModelConfig.aishell()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AsrModel(cfg)
        _perturb_norms(model)
    return model.eval()
