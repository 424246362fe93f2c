"""BuildConfig -> builder settings, as a pure function of the config and what TensorRT offers.

No TensorRT here: `Capabilities` describes an installed TensorRT as plain data
(engine.trt_compat.capabilities() fills it on the GPU host), so the translation
and its "ignored knob" decisions are testable on CPU. engine/build.py applies
the result with the real API.

Honesty rule: a knob that only tunes speed (tactic sources, opt level, aux
streams, workspace, sparse weights) and that this TensorRT lacks is ignored with
a reason; a knob that changes numerics (FP16, INT8, precision constraints) and
is missing makes the config unbuildable (BuildError), because an engine built
without it would be scored as if it had it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine.config import BuildConfig
from engine.errors import BuildError

# IBuilderConfig members whose presence differs between TensorRT releases.
CONFIG_ATTRS = ("builder_optimization_level", "max_aux_streams", "profiling_verbosity", "progress_monitor",
                "set_tactic_sources", "set_memory_pool_limit", "set_calibration_profile", "int8_calibrator",
                "create_timing_cache", "set_timing_cache", "set_flag", "clear_flag", "set_preview_feature")

CONSTRAINT_FLAGS = {"obey": "OBEY_PRECISION_CONSTRAINTS", "prefer": "PREFER_PRECISION_CONSTRAINTS"}
CALIBRATOR_CLASSES = {"entropy2": "IInt8EntropyCalibrator2", "minmax": "IInt8MinMaxCalibrator"}
DEFAULT_OPT_LEVEL = 3


@dataclass(frozen=True)
class Capabilities:
    """What one installed TensorRT offers (names of enum members and IBuilderConfig properties)."""
    version: tuple[int, ...]
    builder_flags: frozenset[str]
    tactic_sources: tuple[str, ...]
    memory_pools: frozenset[str]
    config_attrs: frozenset[str]
    calibrators: frozenset[str]
    progress_monitor: bool = False
    inspector: bool = True
    profiling_verbosity: frozenset[str] = frozenset()
    preview_features: frozenset[str] = frozenset()  # trt.PreviewFeature members
    # cuDNN really loadable (not only its loader): without it the CUDNN tactic source has
    # no kernels, and TensorRT < 10 aborts the process when it serializes a timing cache.
    cudnn: bool = True

    @property
    def unusable_tactic_sources(self) -> frozenset[str]:
        return frozenset() if self.cudnn or "CUDNN" not in self.tactic_sources else frozenset({"CUDNN"})

    @property
    def timing_cache_problem(self) -> str | None:
        """Why a timing cache cannot be used here, or None."""
        if not {"create_timing_cache", "set_timing_cache"} <= self.config_attrs:
            return "IBuilderConfig has no create_timing_cache"
        if not self.cudnn and self.version[:1] < (10,):
            return ("TensorRT < 10 serializes timing caches through cuDNN, whose libraries cannot be "
                    "loaded here (it would abort the process)")
        return None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["unusable_tactic_sources"] = self.unusable_tactic_sources
        return {k: sorted(v) if isinstance(v, frozenset) else list(v) if isinstance(v, tuple) else v
                for k, v in d.items()}


@dataclass
class BuilderSettings:
    """What build.py sets on the IBuilderConfig."""
    flags_on: list[str] = field(default_factory=list)
    flags_off: list[str] = field(default_factory=list)
    tactic_sources: list[str] | None = None        # None: leave TensorRT's default set
    drop_tactic_sources: list[str] = field(default_factory=list)   # cleared from the default set
    workspace_bytes: int | None = None              # None: leave TensorRT's default
    opt_level: int | None = None                    # None: not settable here
    max_aux_streams: int | None = None              # None: TensorRT decides
    detailed_profiling: bool = False                # ProfilingVerbosity.DETAILED (the inspector needs it)
    calibrator: str | None = None                   # "entropy2" | "minmax" when INT8 calibration runs
    preview_features: dict[str, bool] = field(default_factory=dict)   # PreviewFeature name -> on/off
    ignored: dict[str, str] = field(default_factory=dict)   # knob -> why it has no effect here
    notes: list[str] = field(default_factory=list)


def _require(caps: Capabilities, flag: str, why: str) -> None:
    if flag not in caps.builder_flags:
        version = ".".join(map(str, caps.version))
        raise BuildError(f"{why} needs BuilderFlag.{flag}, which TensorRT {version} does not have "
                         f"(its flags: {', '.join(sorted(caps.builder_flags)) or 'none'})")


def builder_settings(config: BuildConfig, caps: Capabilities) -> BuilderSettings:
    """The builder settings for `config` on a TensorRT with `caps`; BuildError where numerics can't be honoured."""
    s = BuilderSettings()
    attrs = caps.config_attrs

    if config.uses_fp16:
        _require(caps, "FP16", "fp16 (flag or a group pinned to fp16)")
        s.flags_on.append("FP16")
    if config.uses_int8:
        _require(caps, "INT8", "int8 (flag or a group pinned to int8)")
        if config.calibrator not in caps.calibrators or "int8_calibrator" not in attrs:
            raise BuildError(f"int8 needs the {CALIBRATOR_CLASSES[config.calibrator]} calibrator, which this "
                             f"TensorRT does not have (it has: {', '.join(sorted(caps.calibrators)) or 'none'})")
        s.flags_on.append("INT8")
        s.calibrator = config.calibrator

    # TF32 is on by default in TensorRT: clear it explicitly when the config says off.
    if "TF32" in caps.builder_flags:
        (s.flags_on if config.tf32 else s.flags_off).append("TF32")
    elif config.tf32:
        s.ignored["tf32"] = "this TensorRT has no TF32 builder flag"

    if config.layer_precision:
        if config.precision_constraints in CONSTRAINT_FLAGS:
            _require(caps, CONSTRAINT_FLAGS[config.precision_constraints],
                     f"precision_constraints {config.precision_constraints}")
            s.flags_on.append(CONSTRAINT_FLAGS[config.precision_constraints])
        else:
            s.notes.append("layer_precision with precision_constraints none: TensorRT may not honour the requests")

    if config.sparse_weights:
        if "SPARSE_WEIGHTS" in caps.builder_flags:
            s.flags_on.append("SPARSE_WEIGHTS")
        else:
            s.ignored["sparse_weights"] = "this TensorRT has no SPARSE_WEIGHTS builder flag"

    unusable = caps.unusable_tactic_sources
    if config.tactic_sources is not None:
        if "set_tactic_sources" not in attrs:
            s.ignored["tactic_sources"] = "IBuilderConfig has no set_tactic_sources"
        else:
            usable = [t for t in caps.tactic_sources if t not in unusable]
            keep = [t for t in config.tactic_sources if t in usable]
            missing = [t for t in config.tactic_sources if t not in usable]
            if missing:
                s.ignored["tactic_sources"] = (f"{', '.join(missing)} not usable with this TensorRT here "
                                               f"(it has {', '.join(usable) or 'none'})")
            s.tactic_sources = keep
    elif unusable and "set_tactic_sources" in attrs:
        s.drop_tactic_sources = sorted(unusable)
        s.notes.append(f"default tactic sources without {', '.join(sorted(unusable))} (unusable here)")

    if "WORKSPACE" in caps.memory_pools and "set_memory_pool_limit" in attrs:
        s.workspace_bytes = int(config.workspace_mib) * (1 << 20)
    else:
        s.ignored["workspace_mib"] = "IBuilderConfig has no set_memory_pool_limit(MemoryPoolType.WORKSPACE)"

    if "builder_optimization_level" in attrs:
        s.opt_level = int(config.opt_level)
    elif config.opt_level != DEFAULT_OPT_LEVEL:
        s.ignored["opt_level"] = "IBuilderConfig has no builder_optimization_level"

    if config.max_aux_streams is not None:
        if "max_aux_streams" in attrs:
            s.max_aux_streams = int(config.max_aux_streams)
        else:
            s.ignored["max_aux_streams"] = "IBuilderConfig has no max_aux_streams"

    for name, on in config.preview_features.items():
        # Preview features change which builder path runs, not the model's numerics: a missing
        # one is ignored with its reason, like the other speed-only knobs.
        if name in caps.preview_features and "set_preview_feature" in attrs:
            s.preview_features[name] = bool(on)
        else:
            have = ", ".join(sorted(caps.preview_features)) or "none"
            s.ignored[f"preview_features.{name}"] = f"this TensorRT has no PreviewFeature.{name} (it has {have})"

    s.detailed_profiling = "DETAILED" in caps.profiling_verbosity and "profiling_verbosity" in attrs
    if not s.detailed_profiling:
        s.notes.append("no ProfilingVerbosity.DETAILED: the inspector shows layer names only")
    return s


def tactic_source_mask(names: list[str], values: dict[str, Any]) -> int:
    """Bitmask for IBuilderConfig.set_tactic_sources: OR of 1 << int(TacticSource.X)."""
    mask = 0
    for n in names:
        mask |= 1 << int(values[n])
    return mask
