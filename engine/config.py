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

from workload.shapes import GRID, MODELS

PRECISIONS = ("fp32", "fp16", "int8")
CONSTRAINTS = ("none", "prefer", "obey")
# TensorRT 8.6's tactic sources; newer releases may drop some (CUDNN, CUBLAS): the
# builder keeps only those the installed TensorRT has and logs the rest.
TACTIC_SOURCES = ("CUBLAS", "CUBLAS_LT", "CUDNN", "EDGE_MASK_CONVOLUTIONS", "JIT_CONVOLUTIONS")
CALIBRATORS = ("entropy2", "minmax")


class ConfigError(ValueError):
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

    def __post_init__(self) -> None:
        if self.opt_shape is not None:
            self.opt_shape = tuple(int(x) for x in self.opt_shape)  # YAML gives lists
        self.validate()

    def validate(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"model: {self.model!r} is not one of {', '.join(MODELS)}")
        for group, prec in self.layer_precision.items():
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
        if self.workspace_mib <= 0:
            raise ConfigError(f"workspace_mib: {self.workspace_mib} must be positive")
        if self.opt_shape is not None:
            if len(self.opt_shape) != 2:
                raise ConfigError(f"opt_shape: {self.opt_shape} must be [batch, frames]")
            b, t = self.opt_shape
            bmin, bmax = min(g[0] for g in GRID), max(g[0] for g in GRID)
            tmin, tmax = min(g[1] for g in GRID), max(g[1] for g in GRID)
            if not (bmin <= b <= bmax and tmin <= t <= tmax):
                raise ConfigError(f"opt_shape: {list(self.opt_shape)} is outside the profile [{bmin}..{bmax}]x[{tmin}..{tmax}]")
        if self.calibrator not in CALIBRATORS:
            raise ConfigError(f"calibrator: {self.calibrator!r} is not one of {', '.join(CALIBRATORS)}")

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


def baseline(model: str) -> BuildConfig:
    """The naive baseline: parse the ONNX as exported, one profile over every test shape, plain FP32."""
    return BuildConfig(model=model)
