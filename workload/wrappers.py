"""The exported modules: the contest's encoder and decoder (attention rescoring) signatures.

As wenet/bin/export_onnx_gpu.py's Encoder and Decoder, less the outputs the
contest dropped. Attribute names set the ONNX node scopes that
engine/layer_groups.py matches: `/encoder/encoders.3/...`, `/decoder/decoders.0/...`,
`/scoring/...` for the rescoring arithmetic after the decoder.
"""
from __future__ import annotations

import torch
from torch import nn

from workload.model import ConformerEncoder, TransformerDecoder, make_pad_mask

ENCODER_INPUTS = ("speech", "speech_lengths")
ENCODER_OUTPUTS = ("encoder_out", "encoder_out_lens")
DECODER_INPUTS = ("encoder_out", "encoder_out_lens", "hyps_pad_sos_eos", "hyps_lens_sos", "ctc_score")
DECODER_OUTPUTS = ("decoder_out", "best_index")


class EncoderWrapper(nn.Module):
    def __init__(self, encoder: ConformerEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor):
        """speech f32 [B, T, 80], speech_lengths i32 [B] -> encoder_out f32 [B, T', d], lens i32 [B]."""
        encoder_out, mask = self.encoder(speech, speech_lengths)
        # Lengths through the mask, as WeNet's export: a graph pass may replace this path.
        encoder_out_lens = mask.squeeze(1).sum(1).int()
        return encoder_out, encoder_out_lens


class AttentionRescoring(nn.Module):
    """log_softmax, target log-probs summed over valid positions, + ctc_weight * ctc_score, argmax."""

    def __init__(self, beam: int, ctc_weight: float):
        super().__init__()
        self.beam = beam
        self.ctc_weight = ctc_weight

    def forward(self, logits, targets, lengths, ctc_score):
        # logits [B*beam, L, V], targets [B*beam, L] (i32), lengths [B*beam], ctc_score [B, beam]
        log_probs = torch.nn.functional.log_softmax(logits, dim=-1)
        length = targets.size(1)
        valid = ~make_pad_mask(lengths, length)                       # [B*beam, L]
        index = (targets * valid).long().unsqueeze(2)                 # padded targets -> token 0
        score = log_probs.gather(2, index).squeeze(2) * valid
        score = score.sum(1).view(-1, self.beam) + self.ctc_weight * ctc_score
        best_index = torch.argmax(score, dim=1).int()                 # int32: no int64 outputs in TensorRT
        decoder_out = log_probs.view(-1, self.beam, length, log_probs.size(-1))
        return decoder_out, best_index


class DecoderWrapper(nn.Module):
    def __init__(self, decoder: TransformerDecoder, beam: int, ctc_weight: float = 0.5):
        super().__init__()
        self.decoder = decoder
        self.beam = beam
        self.scoring = AttentionRescoring(beam, ctc_weight)

    def forward(self, encoder_out, encoder_out_lens, hyps_pad_sos_eos, hyps_lens_sos, ctc_score):
        """encoder_out f32 [B, T, d], encoder_out_lens i32 [B], hyps_pad_sos_eos i32 [B, beam, L+1],
        hyps_lens_sos i32 [B, beam], ctc_score f32 [B, beam]
        -> decoder_out f32 [B, beam, L, V] (log-probs), best_index i32 [B]."""
        batch, frames, dim = encoder_out.shape
        rows = batch * self.beam
        memory = encoder_out.repeat(1, self.beam, 1).view(rows, frames, dim)
        memory_mask = ~make_pad_mask(encoder_out_lens, frames).unsqueeze(1)          # [B, 1, T]
        memory_mask = memory_mask.repeat(1, self.beam, 1).view(rows, 1, frames)
        length = hyps_pad_sos_eos.size(2) - 1
        hyps = hyps_pad_sos_eos.view(rows, length + 1)
        lengths = hyps_lens_sos.view(rows)
        logits = self.decoder(memory, memory_mask, hyps[:, :-1], lengths)
        return self.scoring(logits, hyps[:, 1:], lengths, ctc_score)
