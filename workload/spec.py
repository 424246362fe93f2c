"""The Workload spec: one YAML file says everything the tuner needs to know about an ONNX model.

    spec = load_spec("workload/specs/wenet-encoder.yaml")
    spec.input_shapes(4, 64)          # {"speech": (4, 64, 80), "speech_lengths": (4,)}
    spec.study_name("serving")        # "wenet-encoder-serving"

The format is documented in README ("Tune your own ONNX model") with a complete example;
`workload/specs/wenet-{encoder,decoder}.yaml` are the two shipped specs. Loading is strict:
an unknown key, a wrong type or an inconsistent value (a grid shape outside the ranges, an
output without a threshold, an expression that is not positive over the length range) is a
WorkloadError with one line naming the file and the key. workload/registry.py maps names
(`encoder`, `decoder`, or a spec's own) to loaded specs.

Paths (onnx, cases.folder) are relative to the spec file's folder; `{work_dir}` in them, and
in `export`, is the run's work directory (default `work`), where the WeNet specs keep theirs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workload.dim_expr import parse_dims
from workload.errors import WorkloadError
from workload.groups import LayerGroups, parse_groups
from workload.spec_parts import (DTYPES, METRICS, Axis, CasesSpec, GridSpec, InputSpec, OutputSpec,  # noqa: F401
                                 PrecisionSpec, SearchSpec, _float, _int, _ints, _keys, _random, _str, _tensors,
                                 parse_cases, parse_grid_spec, parse_precision, parse_search)

DEFAULT_WORK = "work"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Workload:
    name: str                                   # BuildConfig.model; <name>.onnx/.plan/.yaml, test files
    study: str                                  # studies are <study>-<harness>
    onnx: str
    batch: Axis
    length: Axis
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    grid: GridSpec
    search: SearchSpec
    export: str | None = None
    description: str = ""
    cases: CasesSpec = field(default_factory=CasesSpec)
    contest_loop: tuple[int, int] = (10, 30)    # (warm-ups, timed runs) of the contest harness
    layer_groups: LayerGroups = field(default_factory=LayerGroups)
    bucket_defaults: tuple[tuple[int, ...], tuple[int, ...]] = ((1, 4, 16), (64, 256, 1024))   # (batch, length)
    precision: PrecisionSpec = field(default_factory=PrecisionSpec)
    source: str | None = field(default=None, compare=False)      # the YAML file it was loaded from

    # --- shapes ----------------------------------------------------------------------------
    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    @property
    def max_batch_limit(self) -> int:
        """The largest batch an engine of this workload may be built for (stress grid included)."""
        return self.batch.stress_max or self.batch.max

    def input_shapes(self, batch: int, length: int) -> dict[str, tuple[int, ...]]:
        """The shape of every input for a test case of `batch` x `length`."""
        return {i.name: tuple(d.value(batch, length) for d in i.dims) for i in self.inputs}

    def profile_shapes(self, opt: tuple[int, int] | None = None, *, batch: tuple[int, int] | None = None,
                       frames: tuple[int, int] | None = None) -> dict[str, tuple[tuple, tuple, tuple]]:
        """min/opt/max shape of every input for one optimization profile over (min, max) ranges;
        `opt` (batch, length) defaults to the largest shape of the ranges."""
        batch = batch or (self.batch.min, self.batch.max)
        frames = frames or (self.length.min, self.length.max)
        lo, hi = self.input_shapes(batch[0], frames[0]), self.input_shapes(batch[1], frames[1])
        mid = self.input_shapes(*(opt if opt is not None else (batch[1], frames[1])))
        return {name: (lo[name], mid[name], hi[name]) for name in lo}

    # --- files and names -------------------------------------------------------------------
    def _path(self, template: str, work_dir: str | Path) -> Path:
        text = template.replace("{work_dir}", str(work_dir))
        path = Path(text)
        if "{work_dir}" in template or path.is_absolute() or self.source is None:
            return path
        return Path(self.source).parent / path

    def onnx_path(self, work_dir: str | Path = DEFAULT_WORK) -> Path:
        return self._path(self.onnx, work_dir)

    def cases_dir(self, work_dir: str | Path = DEFAULT_WORK) -> Path:
        return self._path(self.cases.folder, work_dir)

    def export_command(self, work_dir: str | Path = DEFAULT_WORK) -> str | None:
        return self.export.replace("{work_dir}", str(work_dir)) if self.export else None

    def study_name(self, harness: str) -> str:
        return f"{self.study}-{harness}"

    def cases_hint(self) -> str:
        """How this workload's test cases are made (for the message when they are missing)."""
        if self.cases.generate:
            return f"python3 -m workload cases --workload {self.source or self.name}"
        if self.source and Path(self.source).parent == Path(__file__).resolve().parent / "specs":
            return "python3 -m workload data"
        return f"write them as {self.source or 'the spec'} says: <name>-<batch>-<length>.npz"

    def build_material(self) -> dict[str, Any]:
        """What of the spec decides an engine's bytes (profiles, buckets, layer groups): the engine
        cache's key covers it (engine/plan_cache.py), so an edited spec never reuses a stale plan."""
        return {"name": self.name, "batch": [self.batch.min, self.batch.max, self.batch.stress_max],
                "length": [self.length.min, self.length.max],
                "inputs": [[i.name, i.dtype, [d.text for d in i.dims]] for i in self.inputs],
                "buckets": [list(b) for b in self.bucket_defaults], "layer_groups": self.layer_groups.to_dict()}


# --- loading ---------------------------------------------------------------------------------
def load_spec(path: str | Path) -> Workload:
    """Read and validate a spec file; WorkloadError (one line, naming the file) when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise WorkloadError(f"workload spec {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        return spec_from_dict(data, source=str(path.resolve()))
    except WorkloadError as exc:
        raise WorkloadError(f"{path}: {exc}") from None


def spec_from_dict(data: Any, source: str | None = None) -> Workload:
    """A Workload from parsed YAML; WorkloadError (one line) at the first problem."""
    d = _keys(data, "spec", ("name", "onnx", "batch", "length", "inputs", "outputs", "grid"),
              ("study", "export", "description", "cases", "contest_loop", "layer_groups", "buckets",
               "search", "precision"))
    name = _str(d["name"], "name")
    if not _NAME.fullmatch(name):
        raise WorkloadError(f"name: {name!r} must start with a letter and hold letters, digits, _ . - only")
    study = _str(d.get("study", name), "study")
    batch = _keys(d["batch"], "batch", ("min", "max"), ("stress_max",))
    length = _keys(d["length"], "length", ("min", "max"), ())
    axes = {}
    for key, ax in (("batch", batch), ("length", length)):
        lo, hi = _int(ax["min"], f"{key}.min"), _int(ax["max"], f"{key}.max")
        if hi < lo:
            raise WorkloadError(f"{key}: max {hi} is below min {lo}")
        stress = _int(ax["stress_max"], f"{key}.stress_max") if ax.get("stress_max") is not None else None
        if stress is not None and stress < hi:
            raise WorkloadError(f"{key}.stress_max {stress} is below max {hi}")
        axes[key] = Axis(lo, hi, stress)

    inputs = []
    for i, t in enumerate(_tensors(d["inputs"], "inputs", False)):
        w = f"inputs[{i}]"
        t = _keys(t, w, ("name", "dtype", "dims"), ("random",))
        dtype = _str(t["dtype"], f"{w}.dtype")
        if dtype not in DTYPES:
            raise WorkloadError(f"{w}.dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
        inputs.append(InputSpec(_str(t["name"], f"{w}.name"), dtype, parse_dims(t["dims"], f"{w}.dims"),
                                _random(t.get("random"), dtype, f"{w}.random")))
    outputs = []
    for i, t in enumerate(_tensors(d["outputs"], "outputs", True)):
        w = f"outputs[{i}]"
        t = _keys(t, w, ("name",), ("dims", "metric", "eps", "max_abs", "max_rel", "reference_sum_axis"))
        metric = t.get("metric", "check")
        if metric not in METRICS:
            raise WorkloadError(f"{w}.metric: {metric!r} is not one of {', '.join(METRICS)}")
        limits = {k: _float(t[k], f"{w}.{k}") if t.get(k) is not None else None for k in ("max_abs", "max_rel")}
        if limits["max_abs"] is None and limits["max_rel"] is None:
            raise WorkloadError(f"{w}: give max_abs and/or max_rel (the thresholds a Good case stays under)")
        axis = t.get("reference_sum_axis")
        outputs.append(OutputSpec(
            _str(t["name"], f"{w}.name"),
            parse_dims(t["dims"], f"{w}.dims", allow_any=True) if t.get("dims") is not None else None,
            metric, _float(t.get("eps", 1e-5), f"{w}.eps"), limits["max_abs"], limits["max_rel"],
            _int(axis, f"{w}.reference_sum_axis", 0) if axis is not None else None))
    clash = set(i.name for i in inputs) & set(o.name for o in outputs)
    if clash:
        raise WorkloadError(f"outputs: {sorted(clash)} are also inputs")

    loop = _keys(d.get("contest_loop", {}), "contest_loop", (), ("warmup", "runs"))
    contest_loop = (_int(loop.get("warmup", 10), "contest_loop.warmup", 0), _int(loop.get("runs", 30), "contest_loop.runs"))
    grid = parse_grid_spec(d["grid"])
    buckets = _keys(d.get("buckets", {}), "buckets", (), ("batch", "length"))
    bucket_defaults = (_ints(buckets["batch"], "buckets.batch") if "batch" in buckets else grid.batches,
                       _ints(buckets["length"], "buckets.length") if "length" in buckets else grid.lengths)
    spec = Workload(
        name=name, study=study, onnx=_str(d["onnx"], "onnx"), batch=axes["batch"], length=axes["length"],
        inputs=tuple(inputs), outputs=tuple(outputs), grid=grid,
        search=parse_search(d.get("search"), grid, bucket_defaults),
        export=_str(d["export"], "export") if d.get("export") is not None else None,
        description=str(d.get("description", "")), cases=parse_cases(d.get("cases")),
        contest_loop=contest_loop, layer_groups=parse_groups(d.get("layer_groups"), "layer_groups"),
        bucket_defaults=bucket_defaults, precision=parse_precision(d.get("precision")), source=source)
    validate_consistency(spec)
    return spec


def validate_consistency(spec: Workload) -> None:
    """What no single section can check: the grid within the ranges, dims positive over them."""
    b, t = spec.batch, spec.length
    for i, bt in enumerate(spec.grid.batches):
        if not b.min <= bt <= b.max:
            raise WorkloadError(f"grid.batches[{i}]: {bt} is outside batch {b.min}..{b.max}")
    for i, bt in enumerate(spec.grid.stress_batches):
        if not b.max < bt <= spec.max_batch_limit:
            raise WorkloadError(f"grid.stress_batches[{i}]: {bt} must lie in {b.max + 1}..batch.stress_max "
                                f"({spec.max_batch_limit})")
    for i, length in enumerate(spec.grid.lengths):
        if not t.min <= length <= t.max:
            raise WorkloadError(f"grid.lengths[{i}]: {length} is outside length {t.min}..{t.max}")
    probes = sorted({t.min, t.max, *spec.grid.lengths})
    for where, tensors in (("inputs", spec.inputs), ("outputs", spec.outputs)):
        for i, tensor in enumerate(tensors):
            for j, dim in enumerate(tensor.dims or ()):
                if dim.kind != "length":
                    continue
                values = [dim.value(1, n) for n in probes]
                if min(values) < 1:
                    bad = probes[values.index(min(values))]
                    raise WorkloadError(f"{where}[{i}].dims[{j}]: {dim.text!r} is {min(values)} at length {bad}; "
                                        f"it must be >= 1 over length {t.min}..{t.max}")
                if values != sorted(values):
                    raise WorkloadError(f"{where}[{i}].dims[{j}]: {dim.text!r} must not decrease as length grows")
    if not any(d.kind == "length" for i in spec.inputs for d in i.dims) and t.min != t.max:
        raise WorkloadError(f"no input dimension uses length, so length must be one value (min = max), "
                            f"not {t.min}..{t.max}")
    for i, inp in enumerate(spec.inputs):
        if inp.random and inp.random[0] == "length" and (inp.dtype.startswith("float") or inp.dtype == "bool"):
            raise WorkloadError(f"inputs[{i}].random: length fills an integer input, not {inp.dtype}")
    for key, values, lo, hi in (("buckets.batch", spec.bucket_defaults[0], b.min, spec.max_batch_limit),
                                ("buckets.length", spec.bucket_defaults[1], t.min, t.max)):
        if values[0] < lo or values[-1] > hi:
            raise WorkloadError(f"{key}: {list(values)} must lie in {lo}..{hi}")
    for key, lists, lo, hi in (("search.batch_buckets", spec.search.batch_buckets, b.min, spec.max_batch_limit),
                               ("search.length_buckets", spec.search.length_buckets, t.min, t.max),
                               ("search.seed_batch_buckets", (spec.search.seed_batch_buckets,), b.min,
                                spec.max_batch_limit)):
        for values in lists:
            if values[0] < lo or values[-1] > hi:
                raise WorkloadError(f"{key}: {list(values)} must lie in {lo}..{hi}")
    for values in spec.search.length_buckets:
        if values[-1] != t.max:
            raise WorkloadError(f"search.length_buckets: {list(values)} must end at length.max {t.max} "
                                "(a buckets layout without profile 0 must hold the longest case)")
    if spec.cases.calibration_shape is not None:
        cb, ct = spec.cases.calibration_shape
        if not (b.min <= cb <= spec.max_batch_limit and t.min <= ct <= t.max):
            raise WorkloadError(f"cases.calibration_shape: {[cb, ct]} is outside the batch and length ranges")
    if not spec.layer_groups.by_op_type:
        names = {g for g, _ in spec.layer_groups.patterns}
        p = spec.precision
        for key, value in (("graph_order", p.graph_order), ("keep_fp32", p.keep_fp32),
                           ("int8_groups", p.int8_groups)):
            unknown = sorted(set(value or ()) - names)
            if unknown:
                raise WorkloadError(f"precision.{key}: {unknown} are not layer groups ({', '.join(sorted(names))})")
