"""The TensorRT side of a build: ONNX -> network -> builder config -> serialized plan (engine.backend.BuildJob).

Only the API TensorRT 8.6, 10 and 11 share, the rest discovered at run time
(engine.trt_compat). Polygraphy's loaders (NetworkFromOnnxPath, CreateConfig,
EngineBytesFromNetwork) would do parse/config/build in fewer lines, but they log
through Polygraphy's own TensorRT logger and raise generic "Could not parse ONNX
correctly" / "Invalid Engine" errors: the one-line BuildError carrying TensorRT's own
last errors, the per-build log file, the per-knob "ignored: TensorRT refused it"
reports, the cuDNN-missing tactic-source drop and the timing-cache merge would be
lost, so this module keeps its own calls.
"""
from __future__ import annotations

import time
from typing import Any

from engine.backend_types import BuildJob, BuildOutput
from engine.build_report import BuildReport
from engine.errors import BuildError, first_line
from engine.precision import DTYPE_OF, LayerDesc
from engine.settings import tactic_source_mask


def enum_name(value: Any) -> str:
    """'MATRIX_MULTIPLY' for LayerType.MATRIX_MULTIPLY (pybind11 enums have .name; str() says 'LayerType.X')."""
    name = getattr(value, "name", None)
    return str(name) if name else str(value).split(".")[-1]


def _parse(trt, network, logger, onnx_path):
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [" ".join(str(parser.get_error(i)).split()) for i in range(parser.num_errors)]
        shown = "; ".join(errors[:3]) + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else "")
        raise BuildError(f"TensorRT cannot parse {onnx_path}: {shown or 'no parser error given'}")
    return parser


def _inputs(network) -> list:
    return [network.get_input(i) for i in range(network.num_inputs)]


def check_profile(ranks: dict[str, int], shapes: dict[str, tuple]) -> None:
    """Every network input (name -> rank) has a profile shape of its rank; BuildError naming the first that has not."""
    for name, rank in ranks.items():
        if name not in shapes:
            raise BuildError(f"network input {name!r} has no profile shape; the profiles cover {', '.join(shapes)}")
        if rank != len(shapes[name][0]):
            raise BuildError(f"network input {name!r} has rank {rank} but its profile shape has rank "
                             f"{len(shapes[name][0])} ({list(shapes[name][0])})")


def no_engine_error(model: str, sink) -> BuildError:
    """The build returned nothing: TensorRT's last errors, each on one line."""
    errors = sink.last_errors(3)
    return BuildError(f"TensorRT built no {model} engine"
                      + (f": {' | '.join(' '.join(e.split()) for e in errors)}" if errors else
                         " (no error logged; see the build log)"))


def _add_profile(builder, config, network, shapes: dict[str, tuple]) -> None:
    check_profile({t.name: len(tuple(t.shape)) for t in _inputs(network)}, shapes)
    profile = builder.create_optimization_profile()
    for name in (t.name for t in _inputs(network)):
        profile.set_shape(name, *shapes[name])
    if config.add_optimization_profile(profile) < 0:
        raise BuildError(f"TensorRT rejected the optimization profile "
                         f"{ {n: [list(s) for s in v] for n, v in shapes.items()} }")


def describe_layers(network) -> list[LayerDesc]:
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


def _pin(trt, network, a) -> None:
    layer, dtype = network.get_layer(a.index), getattr(trt.DataType, DTYPE_OF[a.precision])
    layer.precision = dtype
    for j in a.output_indices:
        layer.set_output_type(j, dtype)


def apply_settings(trt, config, s, report: BuildReport) -> None:
    """Set the BuilderSettings on an IBuilderConfig; a speed-only knob TensorRT refuses goes to report.ignored."""
    from engine.trt_compat import enum_members

    for name in s.flags_on:
        config.set_flag(getattr(trt.BuilderFlag, name))
    for name in s.flags_off:
        config.clear_flag(getattr(trt.BuilderFlag, name))

    def optional(knob: str, fn) -> bool:
        try:
            if fn() is False:          # setters that answer with a bool (set_tactic_sources)
                raise ValueError("the setter returned False")
            return True
        except Exception as exc:   # speed-only knobs: an honest warning, the build goes on
            report.knob_refused(knob, f"TensorRT refused it: {first_line(exc)}")
            return False

    if s.tactic_sources is not None:
        values = enum_members(trt.TacticSource)
        optional("tactic_sources", lambda: config.set_tactic_sources(tactic_source_mask(s.tactic_sources, values)))
    elif s.drop_tactic_sources:
        values = enum_members(trt.TacticSource)
        mask = int(config.get_tactic_sources()) & ~tactic_source_mask(s.drop_tactic_sources, values)
        if optional("tactic_sources", lambda: config.set_tactic_sources(mask)):
            report.tactic_sources = [n for n, v in values.items() if mask >> int(v) & 1]
    if s.workspace_bytes is not None:
        optional("workspace_mib", lambda: config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE,
                                                                        s.workspace_bytes))
    if s.opt_level is not None:
        optional("opt_level", lambda: setattr(config, "builder_optimization_level", s.opt_level))
    if s.max_aux_streams is not None:
        optional("max_aux_streams", lambda: setattr(config, "max_aux_streams", s.max_aux_streams))
    for name, on in s.preview_features.items():
        optional(f"preview_features.{name}",
                 lambda n=name, v=on: config.set_preview_feature(getattr(trt.PreviewFeature, n), v))
    if s.detailed_profiling:
        optional("profiling_verbosity", lambda: setattr(config, "profiling_verbosity", trt.ProfilingVerbosity.DETAILED))


def open_timing_cache(config, data: bytes, info: dict[str, Any]):
    """A timing cache from `data` set on `config`; a cache from another GPU or TensorRT starts empty."""
    cache = config.create_timing_cache(data)
    if cache is None and data:
        info["note"] = "timing cache unreadable (another TensorRT?): started empty"
        data = b""
        cache = config.create_timing_cache(b"")
    if cache is None:
        info["note"] = "create_timing_cache returned nothing: no timing cache"
        return None
    if not config.set_timing_cache(cache, False):
        if data:
            info["note"] = "timing cache from another device or TensorRT: started empty"
            cache = config.create_timing_cache(b"")
        if cache is None or not config.set_timing_cache(cache, False):
            info["note"] = "set_timing_cache failed: no timing cache"
            return None
    return cache


def _setup_calibration(trt, builder, config, network, job: BuildJob, report: BuildReport):
    import numpy as np

    from engine.calibrator import make_calibrator
    from engine.cuda_runtime import cuda_api

    data = job.calibration.load({t.name: np.dtype(trt.nptype(t.dtype)) for t in _inputs(network)})
    if hasattr(config, "set_calibration_profile"):
        profile = builder.create_optimization_profile()
        for name, shape in data.shapes.items():
            profile.set_shape(name, shape, shape, shape)
        config.set_calibration_profile(profile)
    else:
        report.notes.append("no set_calibration_profile: TensorRT calibrates at the main profile's opt shape")
    calibrator = make_calibrator(trt, cuda_api(), data, job.calibration.algorithm, job.calibration.cache)
    config.int8_calibrator = calibrator
    report.calibration = job.calibration.describe(data)
    return calibrator


def build_plan(trt, logger, job: BuildJob, report: BuildReport) -> BuildOutput:
    """Parse, configure and build; BuildError (one line, TensorRT's last errors) when it fails."""
    from engine.build_progress import make_progress_monitor
    from engine.trt_compat import host_bytes, network_flags

    sink = logger.sink
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = _parse(trt, network, logger, job.onnx_path)
    report.network_layers = network.num_layers
    config = builder.create_builder_config()
    apply_settings(trt, config, job.settings, report)
    for shapes in job.profiles:
        _add_profile(builder, config, network, shapes)
    if job.precision_plan is not None:
        report.apply_precision_plan(job.precision_plan(describe_layers(network)),
                                    lambda a, net=network: _pin(trt, net, a))
    calibrator, cache = None, None
    try:
        if job.calibration is not None:
            calibrator = _setup_calibration(trt, builder, config, network, job, report)
        if job.timing_cache is not None:
            cache = open_timing_cache(config, job.timing_cache, report.timing_cache)
        if job.tracker is not None:
            try:
                monitor = make_progress_monitor(job.tracker, trt)
                if monitor is not None:
                    config.progress_monitor = monitor
            except Exception as exc:
                report.notes.append(f"progress monitor unavailable: {first_line(exc)}")
        t0 = time.monotonic()
        serialized = builder.build_serialized_network(network, config)
        report.build_s = time.monotonic() - t0
        if serialized is None:
            raise no_engine_error(job.model, sink)
        plan = host_bytes(serialized)
        del serialized
        if calibrator is not None and report.calibration is not None:
            report.calibration["cache_used"] = bool(getattr(calibrator, "cache_used", False))
        blob = None
        if cache is not None:
            try:
                current = config.get_timing_cache() if hasattr(config, "get_timing_cache") else None
                blob = host_bytes((current or cache).serialize())
            except Exception as exc:
                report.timing_cache["note"] = f"not saved: {first_line(exc)}"
    finally:
        if calibrator is not None:
            calibrator.free()
    del parser, network, config, builder
    return BuildOutput(plan=plan, timing_cache=blob)


def merge_timing_caches(trt, logger, ours: bytes, theirs: bytes) -> bytes | None:
    """`ours` combined with `theirs` (another build's file), serialized; None when `theirs` is unreadable."""
    from engine.trt_compat import host_bytes

    config = trt.Builder(logger).create_builder_config()
    cache, other = config.create_timing_cache(ours), config.create_timing_cache(theirs)
    if cache is None or other is None:
        return None
    cache.combine(other, False)
    return host_bytes(cache.serialize())
