"""The contest's error metrics and Good/Bad thresholds (testEncoderAndDecoder.py)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def check(a: np.ndarray, b: np.ndarray, eps: float) -> tuple[float, float]:
    """(max |a-b|, median |a-b| / (|b| + eps)) exactly as the contest computes them.

    `a` is the engine's output, `b` the reference. Shapes must match: a silent
    broadcast would score the wrong thing.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"output shape {a.shape} does not match reference shape {b.shape}")
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    a0 = float(diff.max()) if diff.size else 0.0
    r0 = float(np.median(diff / (np.abs(b.astype(np.float64)) + eps))) if diff.size else 0.0
    return a0, r0


@dataclass(frozen=True)
class OutputRule:
    """How one output is compared: eps of the relative error and its limits (None: not judged)."""
    name: str
    eps: float
    max_abs: float | None
    max_rel: float


# Thresholds of the contest: a case is Good iff every limit holds (strict <).
RULES: dict[str, tuple[OutputRule, ...]] = {
    "encoder": (
        OutputRule("encoder_out", 5e-5, 3.5e-2, 2e-3),
        OutputRule("encoder_out_lens", 1e-5, None, 1e-1),
    ),
    "decoder": (
        OutputRule("decoder_out", 1e-5, 4e-1, 2e-4),
        OutputRule("best_index", 1e-5, None, 1e-1),
    ),
}


def rules(model: str) -> tuple[OutputRule, ...]:
    try:
        return RULES[model]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; expected one of {sorted(RULES)}") from None


@dataclass
class CaseErrors:
    """Errors of one test case: a0, r0 of output 0 and a1, r1 of output 1."""
    a0: float
    r0: float
    a1: float
    r1: float
    model: str

    @property
    def ratios(self) -> dict[str, float]:
        """Each judged metric over its threshold: Good iff every ratio < 1."""
        out0, out1 = rules(self.model)
        r = {"a0": self.a0 / out0.max_abs, "r0": self.r0 / out0.max_rel, "r1": self.r1 / out1.max_rel}
        return r

    @property
    def worst_ratio(self) -> float:
        values = list(self.ratios.values())
        # NaN compares false with everything: make a non-finite error the worst possible.
        return max(values) if all(np.isfinite(values)) else float("inf")

    @property
    def good(self) -> bool:
        return all(v < 1.0 for v in self.ratios.values()) and all(
            np.isfinite(x) for x in (self.a0, self.r0, self.a1, self.r1))


def compare_case(model: str, outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> CaseErrors:
    """Contest comparison of one test case's engine outputs with the reference arrays.

    `reference` holds the reference under the contest's names; for the encoder the
    contest stores the [B,1,T'] mask as `encoder_out_lens` and compares the
    engine's lengths with its sum over axis 2, so a mask is reduced here.
    """
    out0, out1 = rules(model)
    ref1 = np.asarray(reference[out1.name])
    if model == "encoder" and ref1.ndim == 3:
        ref1 = ref1.sum(axis=2).reshape(-1)
    got1 = np.asarray(outputs[out1.name]).reshape(ref1.shape) if np.asarray(outputs[out1.name]).size == ref1.size \
        else np.asarray(outputs[out1.name])
    a0, r0 = check(outputs[out0.name], reference[out0.name], out0.eps)
    a1, r1 = check(got1, ref1, out1.eps)
    return CaseErrors(a0, r0, a1, r1, model)
