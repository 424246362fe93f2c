"""Build one engine from an ONNX file and a BuildConfig.

    report = build_engine("work/onnx/encoder.onnx", config, "encoder.plan",
                          timing_cache="work/timing-encoder.cache", log_path="build.log")

The translation of the config into builder settings lives in engine/settings.py
(flags, tactic sources, what is ignored and why), engine/precision.py (per-layer
precision) and engine/profiles.py; this module decides the whole build as an
engine.backend.BuildJob, and the backend (TensorRT: engine/trt_backend.py) applies it.
The files around it (plan, timing cache merge, layer info JSON) are written here.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

from engine.backend import BuildJob, CalibrationJob, get_backend
from engine.build_report import BuildReport
from engine.config import BuildConfig
from engine.errors import BuildError, EngineError, first_line
from engine.precision import plan_precisions
from engine.settings import builder_settings
from engine.timing_cache import atomic_write, file_stat, read_timing_cache, save_timing_cache

log = logging.getLogger("engine")
__all__ = ["BuildReport", "build_engine", "layer_info_path_for"]


def layer_info_path_for(plan_path: str | Path) -> Path:
    """Where build_engine writes the inspector's JSON: `encoder.plan` -> `encoder.layers.json`."""
    p = Path(plan_path)
    return p.with_name(p.stem + ".layers.json")


def _report_settings(report: BuildReport, s) -> None:
    """What the settings ask for; the backend clears what TensorRT refuses (BuildReport.knob_refused)."""
    report.flags, report.flags_cleared = list(s.flags_on), list(s.flags_off)
    report.tactic_sources = list(s.tactic_sources) if s.tactic_sources is not None else None
    report.workspace_mib = s.workspace_bytes >> 20 if s.workspace_bytes is not None else None
    report.opt_level, report.max_aux_streams = s.opt_level, s.max_aux_streams
    report.preview_features = dict(s.preview_features)
    report.ignored.update(s.ignored)
    report.notes.extend(s.notes)


def _profiles(config: BuildConfig, report: BuildReport) -> list[dict]:
    """One optimization profile per ProfileSpec of the config's layout, in index order."""
    from engine.profiles import layout_profiles

    out = []
    for spec in layout_profiles(config):
        out.append(spec.input_shapes(config.model))
        report.profiles.append({"role": spec.role, "batch": list(spec.batch), "frames": list(spec.frames),
                                "opt": list(spec.opt)})
    report.layout = config.describe_layout()
    return out


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
    from engine.build_progress import ElapsedIndicator, PhaseTracker

    backend = get_backend()
    version = backend.version()                  # TensorRTMissing (one line) before any work
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    if not onnx_path.is_file():
        raise BuildError(f"ONNX model {onnx_path} does not exist")
    caps = backend.capabilities()
    s = builder_settings(config, caps)
    if s.calibrator is not None and calibration is None:
        raise BuildError(f"{config.model}: int8 needs calibration data (calibration-{config.model}.npz); "
                         f"none was given")
    report = BuildReport(plan_path=str(plan_path), plan_bytes=0, build_s=0.0, model=config.model, tensorrt=version)
    _report_settings(report, s)
    job = BuildJob(onnx_path=onnx_path, model=config.model, settings=s, profiles=_profiles(config, report))
    if config.layer_precision:
        job.precision_plan = lambda layers: plan_precisions(config.model, layers, config.layer_precision)
    if s.calibrator is not None:
        from engine.calibrator import calibration_cache_name, check_calibration_file
        check_calibration_file(calibration)
        cache = Path(calibration_cache) if calibration_cache else \
            calibration_cache_name(onnx_path, s.calibrator, Path(calibration))
        job.calibration = CalibrationJob(s.calibrator, Path(calibration), cache)
    elif calibration is not None:
        report.notes.append("calibration data given but the config uses no int8: not used")
    cache_path, loaded_stat = None, None
    if timing_cache is not None and caps.timing_cache_problem:
        report.ignored["timing_cache"] = caps.timing_cache_problem
    elif timing_cache is not None:
        cache_path = Path(timing_cache)
        loaded_stat = file_stat(cache_path)
        report.timing_cache = {}
        job.timing_cache = read_timing_cache(cache_path, report.timing_cache)
    tracker = PhaseTracker()
    if progress and caps.progress_monitor:
        job.tracker = tracker
    sink = backend.sink
    with sink.to_file(log_path):
        sink.clear_errors()
        sink.write(3, f"build {config.model} from {onnx_path} with TensorRT {version}\n{config.to_yaml()}")
        note = backend.load_plugins(plugin_libs)
        if note:
            report.notes.append(note)
        for k, v in report.ignored.items():
            sink.write(2, f"ignored {k}: {v}")
        if progress:
            with ElapsedIndicator(f"building {config.model}", tracker):
                out = backend.build(job, report)
        else:
            out = backend.build(job, report)
        if not out.plan:
            raise BuildError(f"TensorRT returned an empty {config.model} engine")
        atomic_write(plan_path, out.plan)
        report.plan_bytes = len(out.plan)
        if cache_path is not None and out.timing_cache is not None:
            try:
                save_timing_cache(cache_path, out.timing_cache, loaded_stat, report.timing_cache,
                                  backend.merge_timing_caches)
            except Exception as exc:   # the engine is built: a cache that cannot be written is a note
                report.timing_cache["note"] = f"not saved: {first_line(exc)}"
        if layer_info:
            try:
                info = backend.inspect(out.plan, plan_path)
                path = layer_info_path_for(plan_path)
                atomic_write(path, json.dumps(info, indent=1).encode())
                report.layer_info_path = str(path)
            except EngineError as exc:
                report.notes.append(f"layer info unavailable: {first_line(exc)}")
            except Exception as exc:
                report.notes.append(f"layer info failed: {type(exc).__name__}: {first_line(exc)}")
        sink.write(3, "report: " + json.dumps(report.to_dict(), default=str))
    return report
