"""The sections of a workload spec (workload/spec.py): their dataclasses and strict parsers.

Every parser raises WorkloadError with one line naming the key (`grid.batches[2]: ...`);
workload.spec.load_spec prefixes the file name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workload.dim_expr import Dim
from workload.errors import WorkloadError

METRICS = ("check", "max")      # scoring.metrics.METRIC_FUNCTIONS implements each (check: the contest's)
DTYPES = ("float32", "float16", "int64", "int32", "int8", "uint8", "bool")
DISTRIBUTIONS = ("normal", "uniform", "integers", "length")


@dataclass(frozen=True)
class Axis:
    min: int
    max: int
    stress_max: int | None = None        # batch only: the largest batch of the stress grid


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: str
    dims: tuple[Dim, ...]
    random: tuple = ()                   # generator: ("normal", mean, std), ("integers", lo, hi), ("length",) ...


@dataclass(frozen=True)
class OutputSpec:
    name: str
    dims: tuple[Dim, ...] | None         # None: not stated (batch axis 0 assumed for padding)
    metric: str = "check"
    eps: float = 1e-5
    max_abs: float | None = None         # limits of the metric's (absolute, relative) errors; None: not judged
    max_rel: float | None = None
    reference_sum_axis: int | None = None   # the reference is reduced by a sum over this axis (when it has it)


@dataclass(frozen=True)
class CasesSpec:
    folder: str = "{work_dir}/data"      # <name>-<batch>-<length>.npz: inputs + reference outputs
    generate: bool = False               # `python -m workload cases` writes them (random inputs, onnxruntime)
    seed: int = 0
    calibration_batches: int = 4         # generator: calibration-<name>.npz batches (INT8)
    calibration_shape: tuple[int, int] | None = None   # (batch, length); None: the largest judged shape


@dataclass(frozen=True)
class GridSpec:
    batches: tuple[int, ...]
    lengths: tuple[int, ...]
    stress_batches: tuple[int, ...] = ()

    @property
    def judged(self) -> tuple[tuple[int, int], ...]:
        return tuple((b, t) for b in self.batches for t in self.lengths)

    @property
    def stress(self) -> tuple[tuple[int, int], ...]:
        return tuple((b, t) for b in self.stress_batches for t in self.lengths)

    @property
    def full(self) -> tuple[tuple[int, int], ...]:
        return self.judged + self.stress


@dataclass(frozen=True)
class SearchSpec:
    """Fixed choice sets of the search space (a study keeps them: changing one breaks resuming)."""
    batch_buckets: tuple[tuple[int, ...], ...]
    length_buckets: tuple[tuple[int, ...], ...]
    seed_batch_buckets: tuple[int, ...]          # the per_batch seeds' buckets


@dataclass(frozen=True)
class PrecisionSpec:
    """Group names for the precision strategies; None: derived from the groups (op_type defaults)."""
    graph_order: tuple[str, ...] | None = None   # kinds in graph order, when the ONNX cannot be read
    keep_fp32: tuple[str, ...] | None = None     # the `mixed` seed's FP32 groups
    int8_groups: tuple[str, ...] | None = None   # the rules strategy's INT8 groups
    rules: tuple[tuple[str, tuple[str, ...]], ...] | None = None   # cumulative FP32 rule sets



def _keys(data: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...]) -> dict:
    if not isinstance(data, dict):
        raise WorkloadError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - set(required) - set(optional))
    if unknown:
        raise WorkloadError(f"{where}: unknown key(s) {unknown}; known: {', '.join(sorted(required + optional))}")
    missing = [k for k in required if k not in data]
    if missing:
        raise WorkloadError(f"{where}: missing {', '.join(missing)}")
    return data


def _int(value: Any, where: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise WorkloadError(f"{where}: {value!r} must be an integer >= {low}")
    return value


def _float(value: Any, where: str) -> float:
    """A number; a string like "5e-5" too (YAML 1.1 reads 5e-5 without a dot as a string)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise WorkloadError(f"{where}: {value!r} must be a non-negative number")
    return float(value)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise WorkloadError(f"{where}: {value!r} must be a non-empty string")
    return value


def _ints(value: Any, where: str, allow_empty: bool = False) -> tuple[int, ...]:
    if not isinstance(value, list) or (not value and not allow_empty):
        raise WorkloadError(f"{where}: expected a list of integers")
    out = tuple(_int(v, f"{where}[{i}]") for i, v in enumerate(value))
    if list(out) != sorted(set(out)):
        raise WorkloadError(f"{where}: {list(out)} must be increasing without repeats")
    return out


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or any(not isinstance(v, str) for v in value):
        raise WorkloadError(f"{where}: expected a list of group names")
    return tuple(value)


def _random(value: Any, dtype: str, where: str) -> tuple:
    if value is None:
        return ()
    if value == "length":
        return ("length",)
    if not isinstance(value, dict) or len(value) != 1:
        raise WorkloadError(f"{where}: expected length or one of {{normal|uniform|integers: [a, b]}}")
    (kind, args), = value.items()
    if kind not in DISTRIBUTIONS[:3] or not isinstance(args, list) or len(args) != 2:
        raise WorkloadError(f"{where}: {kind!r}: expected normal: [mean, std], uniform: [low, high] "
                            f"or integers: [low, high]")
    if kind == "integers" and any(isinstance(a, bool) or not isinstance(a, int) for a in args):
        raise WorkloadError(f"{where}: integers: {args} must be two integers")
    if any(isinstance(a, bool) or not isinstance(a, (int, float)) for a in args) or args[1] < args[0] \
            or (kind == "normal" and args[1] <= 0) or (kind == "integers" and args[1] == args[0]):
        raise WorkloadError(f"{where}: {kind}: {args} is not a valid range")
    if kind == "integers" and dtype.startswith("float") or kind != "integers" and not dtype.startswith("float"):
        raise WorkloadError(f"{where}: {kind} does not suit a {dtype} input")
    return (kind, *args)


def _tensors(data: Any, where: str, output: bool) -> list[dict]:
    if not isinstance(data, list) or not data:
        raise WorkloadError(f"{where}: expected a non-empty list of tensors (each with name and dims)")
    names = [t.get("name") if isinstance(t, dict) else None for t in data]
    if len(set(names)) != len(names):
        raise WorkloadError(f"{where}: names repeat: {names}")
    return data




# --- sections ----------------------------------------------------------------------------
def parse_grid_spec(data: Any) -> GridSpec:
    g = _keys(data, "grid", ("batches", "lengths"), ("stress_batches",))
    return GridSpec(_ints(g["batches"], "grid.batches"), _ints(g["lengths"], "grid.lengths"),
                    _ints(g.get("stress_batches", []), "grid.stress_batches", allow_empty=True))


def parse_cases(data: Any) -> CasesSpec:
    if data is None:
        return CasesSpec()
    c = _keys(data, "cases", (), ("folder", "generate", "seed", "calibration_batches", "calibration_shape"))
    generate = c.get("generate", False)
    if not isinstance(generate, bool):
        raise WorkloadError(f"cases.generate: {generate!r} must be true or false")
    shape = c.get("calibration_shape")
    if shape is not None:
        if not isinstance(shape, list) or len(shape) != 2:
            raise WorkloadError(f"cases.calibration_shape: {shape!r} must be [batch, length]")
        shape = (_int(shape[0], "cases.calibration_shape[0]"), _int(shape[1], "cases.calibration_shape[1]"))
    return CasesSpec(folder=_str(c.get("folder", CasesSpec.folder), "cases.folder"), generate=generate,
                     seed=_int(c.get("seed", 0), "cases.seed", 0),
                     calibration_batches=_int(c.get("calibration_batches", 4), "cases.calibration_batches"),
                     calibration_shape=shape)


def _bucket_lists(value: Any, where: str) -> tuple[tuple[int, ...], ...]:
    if not isinstance(value, list) or not value:
        raise WorkloadError(f"{where}: expected a non-empty list of bucket lists, e.g. [[1, 4, 16]]")
    out = tuple(_ints(v, f"{where}[{i}]") for i, v in enumerate(value))
    if len(set(out)) != len(out):
        raise WorkloadError(f"{where}: bucket lists repeat")
    return out


def parse_search(data: Any, grid: GridSpec, defaults: tuple[tuple[int, ...], tuple[int, ...]]) -> SearchSpec:
    s = _keys(data if data is not None else {}, "search", (), ("batch_buckets", "length_buckets",
                                                              "seed_batch_buckets"))
    batch = _bucket_lists(s["batch_buckets"], "search.batch_buckets") if "batch_buckets" in s else (defaults[0],)
    length = _bucket_lists(s["length_buckets"], "search.length_buckets") if "length_buckets" in s \
        else (defaults[1],)
    seed = _ints(s["seed_batch_buckets"], "search.seed_batch_buckets") if "seed_batch_buckets" in s else batch[0]
    return SearchSpec(batch, length, seed)


def parse_precision(data: Any) -> PrecisionSpec:
    if data is None:
        return PrecisionSpec()
    p = _keys(data, "precision", (), ("graph_order", "keep_fp32", "int8_groups", "rules"))
    rules = None
    if "rules" in p:
        if not isinstance(p["rules"], list) or not p["rules"]:
            raise WorkloadError("precision.rules: expected a list of {name: [groups]} (cumulative, cheapest first)")
        pairs = []
        for i, r in enumerate(p["rules"]):
            if not isinstance(r, dict) or len(r) != 1:
                raise WorkloadError(f"precision.rules[{i}]: expected {{NAME: [group, ...]}}")
            (name, kinds), = r.items()
            pairs.append((_str(name, f"precision.rules[{i}]"), _names(kinds, f"precision.rules[{i}].{name}")))
        rules = tuple(pairs)
    return PrecisionSpec(*(_names(p[k], f"precision.{k}") if k in p else None
                           for k in ("graph_order", "keep_fp32", "int8_groups")), rules=rules)
