"""BuildConfig: everything that decides how one engine is built, as plain data.

The search samples it, the trial worker builds from it, `freeze` writes it as
YAML and `build.sh` reads it back. Adding a builder knob means adding a field
here (with a default that keeps old YAML files valid), using it in
engine/build.py, and sampling it in search/space.py.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.layer_groups import GROUPS, is_group
from workload import registry
from workload.errors import OneLineError, WorkloadError

PRECISIONS = ("fp32", "fp16", "int8")
CONSTRAINTS = ("none", "prefer", "obey")
# TensorRT 8.6's tactic sources; newer releases may drop some (CUDNN, CUBLAS): the
# builder keeps only those the installed TensorRT has and logs the rest.
TACTIC_SOURCES = ("CUBLAS", "CUBLAS_LT", "CUDNN", "EDGE_MASK_CONVOLUTIONS", "JIT_CONVOLUTIONS")
CALIBRATORS = ("entropy2", "minmax")
# Optimization-profile layouts (engine/profiles.py says what each builds).
LAYOUTS = ("single", "per_batch", "buckets")
# The default buckets, length range and batch limit are the workload spec's (`buckets`, `length`,
# `batch`); for the WeNet models these (workload/specs/wenet-*.yaml):
DEFAULT_BATCH_BUCKETS = (1, 4, 16)
DEFAULT_FRAME_BUCKETS = (64, 256, 1024)


class ConfigError(OneLineError, ValueError):
    """A config that cannot be built: one line saying which field and why."""


@dataclass
class BuildConfig:
    model: str
    passes: list[str] = field(default_factory=list)        # candidates/ graph passes, in order
    plugins: list[str] = field(default_factory=list)       # plugins/ rewrites, applied after passes
    fp16: bool = False                                     # BuilderFlag.FP16 (lets TensorRT pick FP16)
    int8: bool = False                                     # BuilderFlag.INT8 (needs a calibrator)
    tf32: bool = False                                     # BuilderFlag.TF32 (TensorRT's default is on)
    layer_precision: dict[str, str] = field(default_factory=dict)  # layer group -> fp32|fp16|int8
    precision_constraints: str = "obey"                    # how layer_precision binds: prefer|obey
    tactic_sources: list[str] | None = None                # None: TensorRT's default set
    workspace_mib: int = 4096
    opt_level: int = 3                                     # builder optimization level (0-5)
    opt_shape: tuple[int, int] | None = None               # (batch, frames); None: max test shape
    max_aux_streams: int | None = None                     # None: TensorRT decides
    calibrator: str = "entropy2"                           # used when int8 or a group is int8
    sparse_weights: bool = False
    # Optimization profiles (engine/profiles.py). single: one profile over the whole range;
    # per_batch: profile 0 over the whole range + one per batch bucket, frames dynamic;
    # buckets: profile 0 + one static profile per (batch bucket, frames bucket), inputs padded up.
    layout: str = "single"
    batch_buckets: list[int] | None = None                 # None: DEFAULT_BATCH_BUCKETS up to max_batch
    frame_buckets: list[int] | None = None                 # buckets only; None: DEFAULT_FRAME_BUCKETS
    contest_profile: bool = True                           # profile 0 spans the whole range (contest harness)
    max_batch: int | None = None                           # None: the workload's batch.max (16; 64 for stress)
    preview_features: dict[str, bool] = field(default_factory=dict)   # trt.PreviewFeature name -> on/off

    def __post_init__(self) -> None:
        if isinstance(self.opt_shape, (list, tuple)):
            self.opt_shape = tuple(self.opt_shape)          # YAML gives lists
        if self.max_batch is None and isinstance(self.model, str) and registry.known(self.model):
            self.max_batch = registry.get(self.model).batch.max
        self.validate()

    @property
    def workload(self):
        """The workload spec of `model` (workload.registry); ConfigError when none is registered."""
        try:
            return registry.get(self.model)
        except WorkloadError as exc:
            raise ConfigError(f"model: {exc}") from None

    def validate(self) -> None:
        if isinstance(self.model, str):
            self.workload                                   # an unknown model is the first error
        self._check_types()
        spec = self.workload
        min_len, max_len = spec.length.min, spec.length.max
        for group, prec in self.layer_precision.items():
            self._check_group(group)
            if prec not in PRECISIONS:
                raise ConfigError(f"layer_precision[{group}]: {prec!r} is not one of {', '.join(PRECISIONS)}")
        if self.precision_constraints not in CONSTRAINTS:
            raise ConfigError(f"precision_constraints: {self.precision_constraints!r} is not one of {', '.join(CONSTRAINTS)}")
        if self.tactic_sources is not None:
            bad = [s for s in self.tactic_sources if s not in TACTIC_SOURCES]
            if bad:
                raise ConfigError(f"tactic_sources: unknown {bad}; known: {', '.join(TACTIC_SOURCES)}")
        if not 0 <= self.opt_level <= 5:
            raise ConfigError(f"opt_level: {self.opt_level} is outside 0..5")
        if self.max_aux_streams is not None and self.max_aux_streams < 0:
            raise ConfigError(f"max_aux_streams: {self.max_aux_streams} must be 0 or more (or null: TensorRT decides)")
        if self.workspace_mib <= 0:
            raise ConfigError(f"workspace_mib: {self.workspace_mib} must be positive")
        if not 1 <= self.max_batch <= spec.max_batch_limit:
            raise ConfigError(f"max_batch: {self.max_batch} is outside 1..{spec.max_batch_limit}")
        if self.opt_shape is not None:
            if len(self.opt_shape) != 2:
                raise ConfigError(f"opt_shape: {list(self.opt_shape)} must be [batch, frames]")
            b, t = self.opt_shape
            if not (1 <= b <= self.max_batch and min_len <= t <= max_len):
                raise ConfigError(f"opt_shape: {list(self.opt_shape)} is outside the profile "
                                  f"[1..{self.max_batch}]x[{min_len}..{max_len}]")
        if self.calibrator not in CALIBRATORS:
            raise ConfigError(f"calibrator: {self.calibrator!r} is not one of {', '.join(CALIBRATORS)}")
        self._check_layout()

    def _check_group(self, group: str) -> None:
        """A layer_precision key is a layer group of the model (the spec's patterns, or by op type the
        bound ONNX's op types; without a readable ONNX the build's check_build finds unmatched groups)."""
        try:
            known = is_group(self.model, group)
        except WorkloadError:
            if self.workload.layer_groups.by_op_type:
                return
            raise
        if not known:
            raise ConfigError(f"layer_precision: {group!r} is not a {self.model} layer group "
                              f"({', '.join(GROUPS[self.model])}, or block<i>.<group>)")

    def _check_types(self) -> None:
        """Bools are bools and ints are ints: YAML's `fp16: "no"` must not build an FP16 engine."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = FIELD_KINDS.get(f.name)
            if kind is None or (value is None and f.name in OPTIONAL_FIELDS):
                continue
            if kind is bool and not isinstance(value, bool):
                raise ConfigError(f"{f.name}: {value!r} must be true or false")
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{f.name}: {value!r} must be an integer")
            if kind is str and not isinstance(value, str):
                raise ConfigError(f"{f.name}: {value!r} must be a string")
            if kind == "ints" and (not isinstance(value, (list, tuple)) or not value
                                   or any(isinstance(v, bool) or not isinstance(v, int) for v in value)):
                raise ConfigError(f"{f.name}: {value!r} must be a non-empty list of integers")
            if kind == "strs" and (not isinstance(value, (list, tuple))
                                   or any(not isinstance(v, str) for v in value)):
                raise ConfigError(f"{f.name}: {value!r} must be a list of names")
            if kind == "str->str" and (not isinstance(value, dict)
                                       or any(not isinstance(k, str) or not isinstance(v, str)
                                              for k, v in value.items())):
                raise ConfigError(f"{f.name}: {value!r} must map names to precisions")
            if kind == "str->bool" and (not isinstance(value, dict)
                                        or any(not isinstance(k, str) or not isinstance(v, bool)
                                               for k, v in value.items())):
                raise ConfigError(f"{f.name}: {value!r} must map feature names to true/false")

    def _check_layout(self) -> None:
        min_len, max_len = self.workload.length.min, self.workload.length.max
        if self.layout not in LAYOUTS:
            raise ConfigError(f"layout: {self.layout!r} is not one of {', '.join(LAYOUTS)}")
        for name, values, lo, hi in (("batch_buckets", self.batch_buckets, 1, self.max_batch),
                                     ("frame_buckets", self.frame_buckets, min_len, max_len)):
            if values is None:
                continue
            if list(values) != sorted(set(values)):
                raise ConfigError(f"{name}: {list(values)} must be increasing without repeats")
            if values[0] < lo or values[-1] > hi:
                raise ConfigError(f"{name}: {list(values)} must lie in {lo}..{hi}")
        if self.layout == "single" and (self.batch_buckets or self.frame_buckets):
            raise ConfigError("batch_buckets/frame_buckets need layout per_batch or buckets")
        if self.layout == "per_batch" and self.frame_buckets:
            raise ConfigError("frame_buckets need layout buckets (per_batch keeps frames dynamic)")
        if self.layout == "single" and not self.contest_profile:
            raise ConfigError("contest_profile: false needs layout per_batch or buckets")
        if not self.contest_profile:     # without profile 0 every shape must fit some bucket
            if self.buckets_of_batch[-1] < self.max_batch:
                raise ConfigError(f"batch_buckets {self.buckets_of_batch} do not reach max_batch {self.max_batch} "
                                  "and contest_profile is false: larger batches could not run")
            if self.layout == "buckets" and self.buckets_of_frames[-1] < max_len:
                raise ConfigError(f"frame_buckets {self.buckets_of_frames} do not reach {max_len} frames "
                                  "and contest_profile is false: longer inputs could not run")

    @property
    def buckets_of_batch(self) -> list[int]:
        """The batch buckets in effect (the default set capped at max_batch, which it always reaches)."""
        if self.batch_buckets is not None:
            return list(self.batch_buckets)
        return sorted({b for b in self.workload.bucket_defaults[0] if b < self.max_batch} | {self.max_batch})

    @property
    def buckets_of_frames(self) -> list[int]:
        return list(self.frame_buckets) if self.frame_buckets is not None else list(self.workload.bucket_defaults[1])

    @property
    def uses_int8(self) -> bool:
        return self.int8 or "int8" in self.layer_precision.values()

    @property
    def uses_fp16(self) -> bool:
        return self.fp16 or "fp16" in self.layer_precision.values()

    # --- plain-data round trip -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["opt_shape"] is not None:
            d["opt_shape"] = list(d["opt_shape"])
        return d

    def describe_layout(self) -> str:
        """'single', 'per_batch[1,4,16]', 'buckets[1,4,16]x[64,256,1024]' (+ '-nocontest')."""
        if self.layout == "single":
            return "single"
        text = f"{self.layout}[{','.join(map(str, self.buckets_of_batch))}]"
        if self.layout == "buckets":
            text += f"x[{','.join(map(str, self.buckets_of_frames))}]"
        return text + ("" if self.contest_profile else "-nocontest")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BuildConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"a build config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; known: {sorted(known)}")
        if "model" not in data:
            raise ConfigError("a build config needs a 'model' field (encoder or decoder)")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_yaml())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "BuildConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        return cls.from_dict(data)


# What _check_types checks per field ("ints": list of ints, "str->bool": mapping, ...).
FIELD_KINDS: dict[str, Any] = {
    "model": str, "passes": "strs", "plugins": "strs", "fp16": bool, "int8": bool, "tf32": bool,
    "layer_precision": "str->str", "precision_constraints": str, "tactic_sources": "strs",
    "workspace_mib": int, "opt_level": int, "opt_shape": "ints", "max_aux_streams": int, "calibrator": str,
    "sparse_weights": bool, "layout": str, "batch_buckets": "ints", "frame_buckets": "ints",
    "contest_profile": bool, "max_batch": int, "preview_features": "str->bool",
}
OPTIONAL_FIELDS = {"tactic_sources", "opt_shape", "max_aux_streams", "batch_buckets", "frame_buckets"}


def baseline(model: str) -> BuildConfig:
    """The naive baseline: parse the ONNX as exported, one profile over every test shape, plain FP32."""
    return BuildConfig(model=model)


def precision_class(config: BuildConfig | None) -> str:
    """fp32 (no lower precision), tf32 (FP32 tensors, TF32 matmul inputs: a 10-bit mantissa like FP16's),
    fp16 (FP16, nothing pinned FP32), mixed (FP16 + FP32 pins), int8, or ?."""
    if config is None:
        return "?"
    if config.int8 or "int8" in config.layer_precision.values():
        return "int8"
    if not config.fp16:
        return "tf32" if config.tf32 else "fp32"
    return "mixed" if "fp32" in config.layer_precision.values() else "fp16"
