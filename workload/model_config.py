"""ModelConfig: the hyper-parameters of the WeNet conformer + attention-rescoring decoder.

Kept free of torch so the data helpers (and the GPU host's Python, which has no
torch) can use it. `aishell()` is the contest model; `tiny()` keeps every
structural pattern at a size that exports and runs in about a second on a CPU.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from workload import shapes
from workload.errors import WorkloadError


class ModelConfigError(WorkloadError):
    """A ModelConfig whose dimensions do not fit together."""


@dataclass(frozen=True)
class ModelConfig:
    name: str = "aishell"
    feature_dim: int = shapes.FEATURE_DIM
    d_model: int = shapes.D_MODEL
    heads: int = 4
    encoder_blocks: int = 12
    encoder_ffn: int = 2048           # "linear_units" of the encoder
    cnn_kernel: int = 15              # depthwise conv of the conformer conv module
    decoder_blocks: int = 6
    decoder_ffn: int = 2048
    vocab: int = shapes.VOCAB_SIZE
    beam: int = shapes.BEAM
    hyp_len: int = shapes.HYP_LEN     # hyps_pad_sos_eos is [B, beam, hyp_len]
    ctc_weight: float = 0.5
    pos_table_rows: int = 5000        # WeNet's positional-encoding max_len

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def aishell(cls) -> "ModelConfig":
        return cls()

    @classmethod
    def tiny(cls) -> "ModelConfig":
        # 4 heads of 16, a 19-bin subsampling output like the real model, a short
        # conv kernel; beam and hyp_len stay at the contest's fixed 10 x 64.
        return cls(name="tiny", d_model=64, heads=4, encoder_blocks=2, encoder_ffn=128, cnn_kernel=7,
                   decoder_blocks=1, decoder_ffn=128, vocab=50)

    @classmethod
    def by_name(cls, name: str) -> "ModelConfig":
        if name == "aishell":
            return cls.aishell()
        if name == "tiny":
            return cls.tiny()
        raise ModelConfigError(f"unknown model config {name!r}; expected aishell or tiny")

    @property
    def sos(self) -> int:
        return self.vocab - 1

    @property
    def eos(self) -> int:
        return self.vocab - 1

    @property
    def subsampled_bins(self) -> int:
        """Feature bins left after the two stride-2 3x3 convolutions (19 for 80 features)."""
        return shapes.encoder_out_len(self.feature_dim)

    def validate(self) -> None:
        ints = {k: v for k, v in asdict(self).items() if k not in ("name", "ctc_weight")}
        for key, value in ints.items():
            if not isinstance(value, int) or value < 1:
                raise ModelConfigError(f"{key}: {value!r} must be a positive integer")
        if self.d_model % self.heads:
            raise ModelConfigError(f"d_model {self.d_model} is not divisible by heads {self.heads}")
        if self.d_model % 2:
            raise ModelConfigError(f"d_model {self.d_model} must be even (sin/cos positional encoding)")
        if self.cnn_kernel % 2 == 0:
            raise ModelConfigError(f"cnn_kernel {self.cnn_kernel} must be odd (symmetric padding)")
        if self.subsampled_bins < 1:
            raise ModelConfigError(f"feature_dim {self.feature_dim} is too small for the x4 subsampling")
        if self.vocab < 3:
            raise ModelConfigError(f"vocab {self.vocab} must leave room for tokens and sos/eos")
        if self.hyp_len < 2:
            raise ModelConfigError(f"hyp_len {self.hyp_len} must hold at least sos and eos")


def default_cmvn(feature_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Global CMVN stats shaped like log-mel fbank statistics (mean 9..15, std 2..4).

    A fixed function of the feature dimension (not of the weight seed), so test
    data made without the model (data.make_inputs) is normalized by any model
    built with default weights.
    """
    i = np.arange(feature_dim, dtype=np.float64) / max(feature_dim - 1, 1)
    mean = 12.0 + 3.0 * np.sin(math.pi * i) - 2.0 * i
    std = 3.0 - 1.0 * i + 0.3 * np.cos(7.0 * i)
    return mean.astype(np.float32), (1.0 / std).astype(np.float32)
