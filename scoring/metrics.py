"""The contest's error metrics (testEncoderAndDecoder.py) and each workload's Good/Bad thresholds.

The thresholds come from the workload specs (workload/specs/*.yaml, or a spec of one's own):
`rules(model)` reads the registry, so a new ONNX model needs no edit here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

import numpy as np

from workload.spec_parts import METRICS


_CHUNK = 1 << 20     # elements per step: float64 temporaries of 8 MB instead of five copies of a whole output


def _errors(a: np.ndarray, b: np.ndarray, eps: float) -> tuple[float, np.ndarray]:
    """(max |a-b|, the array |a-b| / (|b| + eps)), in float64, a chunk at a time.

    The same numbers as the whole-array expression: a decoder output at batch 16 is 43 M elements,
    and five float64 copies of it made the comparison most of a trial's evaluation on the CPU.
    Shapes must match: a silent broadcast would score the wrong thing.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"output shape {a.shape} does not match reference shape {b.shape}")
    af, bf = a.reshape(-1), b.reshape(-1)
    rel = np.empty(af.size, dtype=np.float64)
    a0 = np.float64(0.0)
    for start in range(0, af.size, _CHUNK):
        stop = min(af.size, start + _CHUNK)
        diff = np.subtract(af[start:stop], bf[start:stop], dtype=np.float64)
        np.abs(diff, out=diff)
        a0 = np.maximum(a0, diff.max())           # np.maximum: a NaN output stays NaN (Bad)
        den = np.absolute(bf[start:stop], dtype=np.float64)
        den += eps
        np.divide(diff, den, out=rel[start:stop])
    return float(a0), rel


def check(a: np.ndarray, b: np.ndarray, eps: float) -> tuple[float, float]:
    """(max |a-b|, median |a-b| / (|b| + eps)) exactly as the contest computes them.

    `a` is the engine's output, `b` the reference.
    """
    a0, rel = _errors(a, b, eps)
    return (a0, float(np.median(rel, overwrite_input=True))) if rel.size else (0.0, 0.0)


def max_errors(a: np.ndarray, b: np.ndarray, eps: float) -> tuple[float, float]:
    """(max |a-b|, max |a-b| / (|b| + eps)): the worst element instead of the median."""
    a0, rel = _errors(a, b, eps)
    return (a0, float(rel.max())) if rel.size else (0.0, 0.0)


# A workload spec names one per output (workload.spec_parts.METRICS); each gives (absolute, relative) errors.
METRIC_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray, float], tuple[float, float]]] = {
    "check": check, "max": max_errors}
if set(METRIC_FUNCTIONS) != set(METRICS):
    raise ImportError(f"scoring.metrics implements {sorted(METRIC_FUNCTIONS)}, workload specs name {sorted(METRICS)}")


@dataclass(frozen=True)
class OutputRule:
    """How one output is compared: its metric, eps of the relative error and its limits (None: not judged).

    reference_sum_axis: the reference is summed over this axis first when it has it (the contest
    stores the encoder's lengths as a [B, 1, T'] mask), and the output reshaped to the result."""
    name: str
    eps: float
    max_abs: float | None
    max_rel: float | None
    metric: str = "check"
    reference_sum_axis: int | None = None


class _Rules(Mapping):
    """RULES[model]: the output rules of a registered workload (its spec's outputs, in order)."""

    def __getitem__(self, model: str) -> tuple[OutputRule, ...]:
        from workload.registry import get, known
        if not known(model):
            raise KeyError(model)
        return tuple(OutputRule(o.name, o.eps, o.max_abs, o.max_rel, o.metric, o.reference_sum_axis)
                     for o in get(model).outputs)

    def __iter__(self) -> Iterator[str]:
        from workload.registry import names
        return iter(names())

    def __len__(self) -> int:
        return len(list(iter(self)))


# The contest's thresholds for the WeNet models (workload/specs/wenet-*.yaml): a case is Good iff
# every limit holds (strict <). encoder: encoder_out a < 3.5e-2, r < 2e-3, encoder_out_lens r < 1e-1;
# decoder: decoder_out a < 4e-1, r < 2e-4, best_index r < 1e-1.
RULES: Mapping[str, tuple[OutputRule, ...]] = _Rules()


def rules(model: str) -> tuple[OutputRule, ...]:
    try:
        return RULES[model]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; expected one of {sorted(RULES)}") from None


@dataclass
class CaseErrors:
    """Errors of one test case: (a, r) of each compared output, in the workload's order.

    a0, r0 of output 0 and a1, r1 of output 1 (0 where the workload has one output), `more`
    for outputs 2 and on."""
    a0: float
    r0: float
    a1: float
    r1: float
    model: str
    more: tuple[tuple[float, float], ...] = ()

    @property
    def pairs(self) -> list[tuple[float, float]]:
        n = len(rules(self.model))
        return [(self.a0, self.r0), (self.a1, self.r1), *self.more][:n]

    @property
    def ratios(self) -> dict[str, float]:
        """Each judged metric over its threshold: Good iff every ratio < 1."""
        r = {}
        for i, (rule, (a, rel)) in enumerate(zip(rules(self.model), self.pairs)):
            if rule.max_abs is not None:
                r[f"a{i}"] = a / rule.max_abs
            if rule.max_rel is not None:
                r[f"r{i}"] = rel / rule.max_rel
        return r

    @property
    def worst_ratio(self) -> float:
        values = list(self.ratios.values())
        # NaN compares false with everything: make a non-finite error the worst possible.
        return max(values) if all(np.isfinite(values)) else float("inf")

    @property
    def good(self) -> bool:
        return all(v < 1.0 for v in self.ratios.values()) and all(
            np.isfinite(x) for pair in self.pairs for x in pair)


def compare_case(model: str, outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> CaseErrors:
    """The workload's comparison of one test case's engine outputs with the reference arrays.

    `reference` holds the reference under the outputs' names; a rule with reference_sum_axis
    reduces its reference first (for the encoder the contest stores the [B,1,T'] mask as
    `encoder_out_lens` and compares the engine's lengths with its sum over axis 2).
    """
    pairs = []
    for rule in rules(model):
        ref = np.asarray(reference[rule.name])
        got = np.asarray(outputs[rule.name])
        if rule.reference_sum_axis is not None and ref.ndim > rule.reference_sum_axis:
            ref = ref.sum(axis=rule.reference_sum_axis)
            got = got.reshape(ref.shape) if got.size == ref.size else got
        pairs.append(METRIC_FUNCTIONS[rule.metric](got, ref, rule.eps))
    (a0, r0), (a1, r1) = pairs[0], pairs[1] if len(pairs) > 1 else (0.0, 0.0)
    return CaseErrors(a0, r0, a1, r1, model, tuple(pairs[2:]))
