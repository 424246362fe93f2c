"""Build one TensorRT engine from an ONNX file and a BuildConfig.

    report = build_engine("work/onnx/encoder.onnx", config, "encoder.plan",
                          timing_cache="work/timing-encoder.cache", log_path="build.log")

The translation of the config into builder settings lives in engine/settings.py
(flags, tactic sources, what is ignored and why) and engine/precision.py
(per-layer precision); this module applies them with the TensorRT API that 8.6,
10 and 11 share, discovering the rest at run time.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from engine.config import BuildConfig
from engine.errors import BuildError, EngineError, first_line
from engine.precision import DTYPE_OF, LayerDesc, plan_precisions
from engine.settings import builder_settings, tactic_source_mask
from engine.timing_cache import atomic_write, file_stat, open_timing_cache, save_timing_cache

log = logging.getLogger("engine")


@dataclass
class BuildReport:
    plan_path: str
    plan_bytes: int
    build_s: float
    model: str
    tensorrt: str
    flags: list[str] = field(default_factory=list)            # BuilderFlags set
    flags_cleared: list[str] = field(default_factory=list)    # BuilderFlags cleared (TF32 off)
    tactic_sources: list[str] | None = None
    workspace_mib: int | None = None
    opt_level: int | None = None
    max_aux_streams: int | None = None
    ignored: dict[str, str] = field(default_factory=dict)     # knob -> why it had no effect
    notes: list[str] = field(default_factory=list)
    layer_precision_requests: int = 0                         # layers given a precision
    layer_precision_counts: dict[str, int] = field(default_factory=dict)
    layer_precision_skipped: dict[str, int] = field(default_factory=dict)
    unmatched_groups: list[str] = field(default_factory=list)
    network_layers: int = 0
    calibration: dict[str, Any] | None = None
    timing_cache: dict[str, Any] | None = None
    layer_info_path: str | None = None
    layout: str = "single"                                    # BuildConfig.describe_layout()
    profiles: list[dict[str, Any]] = field(default_factory=list)   # per profile: role, batch, frames, opt
    preview_features: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def layer_info_path_for(plan_path: str | Path) -> Path:
    """Where build_engine writes the inspector's JSON: `encoder.plan` -> `encoder.layers.json`."""
    p = Path(plan_path)
    return p.with_name(p.stem + ".layers.json")


def _parse(trt, network, logger, onnx_path: Path):
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(onnx_path))
    if not ok:
        errors = []
        for i in range(parser.num_errors):
            err = parser.get_error(i)
            errors.append(" ".join(str(err).split()))
        shown = "; ".join(errors[:3]) + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else "")
        raise BuildError(f"TensorRT cannot parse {onnx_path}: {shown or 'no parser error given'}")
    return parser


def _network_inputs(network) -> list:
    return [network.get_input(i) for i in range(network.num_inputs)]


def _add_profiles(builder, bconfig, network, config: BuildConfig, report: BuildReport) -> None:
    """One optimization profile per ProfileSpec of the config's layout, in index order."""
    from engine.profiles import layout_profiles

    for spec in layout_profiles(config):
        _add_profile(builder, bconfig, network, spec.input_shapes(config.model))
        report.profiles.append({"role": spec.role, "batch": list(spec.batch), "frames": list(spec.frames),
                                "opt": list(spec.opt)})
    report.layout = config.describe_layout()


def _add_profile(builder, config, network, shapes: dict[str, tuple]) -> dict[str, list]:
    profile = builder.create_optimization_profile()
    used = {}
    for tensor in _network_inputs(network):
        name = tensor.name
        if name not in shapes:
            raise BuildError(f"network input {name!r} has no profile shape; the profiles cover "
                             f"{', '.join(shapes)}")
        lo, opt, hi = shapes[name]
        rank = len(tuple(tensor.shape))
        if rank != len(lo):
            raise BuildError(f"network input {name!r} has rank {rank} ({list(tensor.shape)}) but its profile "
                             f"shape has rank {len(lo)} ({list(lo)})")
        profile.set_shape(name, lo, opt, hi)
        used[name] = [list(lo), list(opt), list(hi)]
    if config.add_optimization_profile(profile) < 0:
        raise BuildError(f"TensorRT rejected the optimization profile {used}")
    return used


def _describe_layers(trt, network) -> list[LayerDesc]:
    out = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        out.append(LayerDesc(
            index=i, name=layer.name, type=enum_name(layer.type),
            output_dtypes=tuple(enum_name(t.dtype) for t in outs),
            output_is_shape=tuple(bool(getattr(t, "is_shape_tensor", False)) for t in outs),
            output_is_network_output=tuple(bool(getattr(t, "is_network_output", False)) for t in outs)))
    return out


def enum_name(value: Any) -> str:
    """'MATRIX_MULTIPLY' for LayerType.MATRIX_MULTIPLY (pybind11 enums have .name; str() says 'LayerType.X')."""
    name = getattr(value, "name", None)
    return str(name) if name else str(value).split(".")[-1]


def _apply_layer_precisions(trt, network, config: BuildConfig, report: BuildReport) -> None:
    if not config.layer_precision:
        return
    plan = plan_precisions(config.model, _describe_layers(trt, network), config.layer_precision)
    for a in plan.assignments:
        layer = network.get_layer(a.index)
        dtype = getattr(trt.DataType, DTYPE_OF[a.precision])
        try:
            layer.precision = dtype
            for j in a.output_indices:
                layer.set_output_type(j, dtype)
        except Exception as exc:  # a layer that refuses: a build with the rest, said in the report
            report.layer_precision_skipped[f"refused: {first_line(exc)}"] = \
                report.layer_precision_skipped.get(f"refused: {first_line(exc)}", 0) + 1
            continue
        report.layer_precision_requests += 1
        report.layer_precision_counts[a.precision] = report.layer_precision_counts.get(a.precision, 0) + 1
    for reason, n in plan.skipped.items():
        report.layer_precision_skipped[reason] = report.layer_precision_skipped.get(reason, 0) + n
    report.unmatched_groups = plan.unmatched_groups
    if plan.unmatched_groups:
        report.ignored["layer_precision"] = f"no layer belongs to group(s) {', '.join(plan.unmatched_groups)}"


def _setup_calibration(trt, cuda, builder, config, network, build_cfg: BuildConfig, algorithm: str,
                       calibration: Path, onnx_path: Path, calibration_cache: Path | None, report: BuildReport):
    import numpy as np

    from engine.calibrator import CalibrationSet, calibration_cache_name, make_calibrator

    dtypes = {t.name: np.dtype(trt.nptype(t.dtype)) for t in _network_inputs(network)}
    data = CalibrationSet.from_npz(calibration, dtypes)
    if hasattr(config, "set_calibration_profile"):
        profile = builder.create_optimization_profile()
        for name, shape in data.shapes.items():
            profile.set_shape(name, shape, shape, shape)
        config.set_calibration_profile(profile)
    else:
        report.notes.append("no set_calibration_profile: TensorRT calibrates at the main profile's opt shape")
    cache = calibration_cache or calibration_cache_name(onnx_path, algorithm, Path(calibration))
    calibrator = make_calibrator(trt, cuda, data, algorithm, cache)
    config.int8_calibrator = calibrator
    report.calibration = {"algorithm": algorithm, "data": str(calibration), "batches": len(data),
                          "shapes": {k: list(v) for k, v in data.shapes.items()}, "cache": str(cache)}
    return calibrator


def _apply_settings(trt, config, s, report: BuildReport) -> None:
    from engine.trt_compat import enum_members

    for name in s.flags_on:
        config.set_flag(getattr(trt.BuilderFlag, name))
    for name in s.flags_off:
        config.clear_flag(getattr(trt.BuilderFlag, name))
    report.flags, report.flags_cleared = list(s.flags_on), list(s.flags_off)

    def optional(knob: str, fn) -> bool:
        try:
            if fn() is False:          # setters that answer with a bool (set_tactic_sources)
                raise ValueError("the setter returned False")
            return True
        except Exception as exc:   # speed-only knobs: an honest warning, the build goes on
            report.ignored[knob] = f"TensorRT refused it: {first_line(exc)}"
            return False

    if s.tactic_sources is not None:
        values = enum_members(trt.TacticSource)
        if optional("tactic_sources", lambda: config.set_tactic_sources(tactic_source_mask(s.tactic_sources, values))):
            report.tactic_sources = list(s.tactic_sources)
    elif s.drop_tactic_sources:
        values = enum_members(trt.TacticSource)
        default = int(config.get_tactic_sources())
        mask = default & ~tactic_source_mask(s.drop_tactic_sources, values)
        if optional("tactic_sources", lambda: config.set_tactic_sources(mask)):
            report.tactic_sources = [n for n, v in values.items() if mask >> int(v) & 1]
    if s.workspace_bytes is not None:
        if optional("workspace_mib", lambda: config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE,
                                                                           s.workspace_bytes)):
            report.workspace_mib = s.workspace_bytes >> 20
    if s.opt_level is not None:
        if optional("opt_level", lambda: setattr(config, "builder_optimization_level", s.opt_level)):
            report.opt_level = s.opt_level
    if s.max_aux_streams is not None:
        if optional("max_aux_streams", lambda: setattr(config, "max_aux_streams", s.max_aux_streams)):
            report.max_aux_streams = s.max_aux_streams
    for name, on in s.preview_features.items():
        if optional(f"preview_features.{name}",
                    lambda n=name, v=on: config.set_preview_feature(getattr(trt.PreviewFeature, n), v)):
            report.preview_features[name] = on
    if s.detailed_profiling:
        optional("profiling_verbosity",
                 lambda: setattr(config, "profiling_verbosity", trt.ProfilingVerbosity.DETAILED))
    report.ignored.update({k: v for k, v in s.ignored.items() if k not in report.ignored})
    report.notes.extend(s.notes)


def build_engine(onnx_path: str | Path, config: BuildConfig, plan_path: str | Path, *,
                 timing_cache: str | Path | None = None, calibration: str | Path | None = None,
                 plugin_libs: Sequence[str | Path] = (), log_path: str | Path | None = None,
                 progress: bool = True, layer_info: bool = True,
                 calibration_cache: str | Path | None = None) -> BuildReport:
    """Parse, configure, build and write `plan_path`; BuildError (one line) when anything fails.

    `timing_cache`: file read if present and written back (merged) after the build.
    `calibration`: calibration-<model>.npz, needed when the config uses INT8.
    `layer_info`: also write the inspector's per-layer JSON beside the plan.
    """
    from engine.trt_compat import capabilities, get_logger, host_bytes, import_tensorrt, network_flags
    from engine.cuda_runtime import cuda_api
    from engine.build_progress import ElapsedIndicator, PhaseTracker, make_progress_monitor

    trt = import_tensorrt()
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    if not onnx_path.is_file():
        raise BuildError(f"ONNX model {onnx_path} does not exist")
    caps = capabilities(trt)
    s = builder_settings(config, caps)
    if s.calibrator is not None and calibration is None:
        raise BuildError(f"{config.model}: int8 needs calibration data (calibration-{config.model}.npz); "
                         f"none was given")
    report = BuildReport(plan_path=str(plan_path), plan_bytes=0, build_s=0.0, model=config.model,
                         tensorrt=str(getattr(trt, "__version__", "?")))
    logger = get_logger(trt)
    sink = logger.sink
    calibrator = None
    with sink.to_file(log_path):
        sink.clear_errors()
        sink.write(3, f"build {config.model} from {onnx_path} with TensorRT {report.tensorrt}\n{config.to_yaml()}")
        if plugin_libs:
            from plugins.library import load_plugin_libraries
            load_plugin_libraries(plugin_libs)
        try:
            from plugins.library import init_builtin_plugins
            init_builtin_plugins(logger)
        except Exception as exc:
            report.notes.append(f"init_libnvinfer_plugins failed: {first_line(exc)}")

        builder = trt.Builder(logger)
        network = builder.create_network(network_flags(trt))
        parser = _parse(trt, network, logger, onnx_path)
        report.network_layers = network.num_layers
        bconfig = builder.create_builder_config()
        _apply_settings(trt, bconfig, s, report)
        _add_profiles(builder, bconfig, network, config, report)
        _apply_layer_precisions(trt, network, config, report)
        try:
            if s.calibrator is not None:
                calibrator = _setup_calibration(trt, cuda_api(), builder, bconfig, network, config, s.calibrator,
                                                Path(calibration), onnx_path,
                                                Path(calibration_cache) if calibration_cache else None, report)
            elif calibration is not None:
                report.notes.append("calibration data given but the config uses no int8: not used")

            cache, cache_path, loaded_stat = None, None, None
            if timing_cache is not None and caps.timing_cache_problem:
                report.ignored["timing_cache"] = caps.timing_cache_problem
            elif timing_cache is not None:
                cache_path = Path(timing_cache)
                loaded_stat = file_stat(cache_path)
                report.timing_cache = {}
                cache = open_timing_cache(bconfig, cache_path, report.timing_cache)

            tracker = PhaseTracker()
            if progress and caps.progress_monitor:
                try:
                    monitor = make_progress_monitor(tracker, trt)
                    if monitor is not None:
                        bconfig.progress_monitor = monitor
                except Exception as exc:
                    report.notes.append(f"progress monitor unavailable: {first_line(exc)}")

            for k, v in report.ignored.items():
                sink.write(2, f"ignored {k}: {v}")
            t0 = time.monotonic()
            if progress:
                with ElapsedIndicator(f"building {config.model}", tracker):
                    serialized = builder.build_serialized_network(network, bconfig)
            else:
                serialized = builder.build_serialized_network(network, bconfig)
            report.build_s = time.monotonic() - t0
            if serialized is None:
                errors = sink.last_errors(3)
                raise BuildError(f"TensorRT built no {config.model} engine"
                                 + (f": {' | '.join(' '.join(e.split()) for e in errors)}" if errors else
                                    " (no error logged; see the build log)"))
            blob = host_bytes(serialized)
            del serialized
            if not blob:
                raise BuildError(f"TensorRT returned an empty {config.model} engine")
            atomic_write(plan_path, blob)
            report.plan_bytes = len(blob)
            if calibrator is not None and report.calibration is not None:
                report.calibration["cache_used"] = bool(getattr(calibrator, "cache_used", False))
            if cache is not None and cache_path is not None:
                try:
                    save_timing_cache(bconfig, cache, cache_path, loaded_stat, report.timing_cache)
                except Exception as exc:
                    report.timing_cache["note"] = f"not saved: {first_line(exc)}"
        finally:
            if calibrator is not None:
                calibrator.free()
        del parser, network, bconfig, builder

        if layer_info:
            try:
                from engine.inspect import inspect_serialized

                info = inspect_serialized(blob, trt=trt)
                path = layer_info_path_for(plan_path)
                atomic_write(path, json.dumps(info, indent=1).encode())
                report.layer_info_path = str(path)
            except EngineError as exc:
                report.notes.append(f"layer info unavailable: {first_line(exc)}")
            except Exception as exc:
                report.notes.append(f"layer info failed: {type(exc).__name__}: {first_line(exc)}")
        sink.write(3, "report: " + json.dumps(report.to_dict(), default=str))
    return report
