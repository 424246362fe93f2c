"""What every trial of a `tune` run would fail on, checked before the study is touched.

A trial runs in its own worker process; an input that makes every worker fail (no TensorRT,
a worker command that does not exist, an unreadable or foreign ONNX, a test file that is
truncated or missing, a broken calibration set or plugin library) would otherwise fill the
study with FAIL trials, one build after another. `check_run(opts)` finds them at once, as one
`error: ...` line (the packages' own errors: PrepareError, EvaluateError, WorkloadError, ...).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

from search.errors import SearchError


def check_worker(command: Sequence[str] | None) -> None:
    """The worker can start: the stand-in command's program exists; the real worker's Python has TensorRT."""
    if command is not None:
        program = command[0]
        found = shutil.which(program) if os.sep not in program else (program if os.access(program, os.X_OK) else None)
        if not found or not Path(found).is_file():
            raise SearchError(f"--worker-command: {program} is not an executable program")
        return
    from engine.backend import get_backend

    backend = get_backend()      # the worker runs in this Python (search.runner.worker_command)
    backend.version()
    backend.device()


def check_run(opts) -> None:
    """What every trial of a tune run (TuneOptions) would fail on: each model's ONNX and test data (the
    workload spec's paths unless --onnx-dir / --data), then the worker."""
    from search.grid import parse_grid

    for model in opts.study.models:
        check_model(model, opts.onnx_path(model), opts.study.work_dir)
        check_data(model, opts.data_path(model), parse_grid(opts.trial.grid, model), opts.space.allow_int8)
    check_worker(opts.worker_command)


def check_model(model: str, onnx: Path, work_dir: str | Path) -> None:
    """The source ONNX is readable and is its model's (the inputs the workload spec names)."""
    from engine.prepare import source_node_names
    from workload import registry

    if not Path(onnx).is_file():
        spec = registry.get(model)
        how = spec.export_command(work_dir) or f"write it, as {spec.source} says"
        raise SearchError(f"{onnx} does not exist (export it first: {how})")
    source_node_names(onnx, model)


def check_data(model: str, data_dir: Path, grid: Sequence[tuple[int, int]], int8: bool) -> None:
    """Every test file of the grid readable with its arrays; with INT8, the model's calibration set."""
    from engine.evaluation import check_cases, select_cases
    from workload import registry
    from workload.data import check_calibration

    hint = registry.get(model).cases_hint()
    if not Path(data_dir).is_dir():
        raise SearchError(f"test data directory {data_dir} does not exist ({hint})")
    check_cases(model, select_cases(model, data_dir, grid, strict=True)[0])
    if int8:
        calib = Path(data_dir) / f"calibration-{model}.npz"
        if not calib.is_file():
            raise SearchError(f"--allow-int8 needs {calib} ({hint})")
        check_calibration(calib, model)


def check_plugin_libraries(paths: Sequence[str]) -> None:
    from plugins.library import check_plugin_library

    for lib in paths:
        check_plugin_library(lib)
