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
    from engine.trt_compat import cuda_api, import_tensorrt

    import_tensorrt()            # the worker runs in this Python (search.runner.worker_command)
    cuda_api()


def check_models(models: Sequence[str], onnx_paths: Sequence[Path]) -> None:
    """Each source ONNX is readable and is its model's (the inputs an export has)."""
    from engine.prepare import source_node_names

    for model, onnx in zip(models, onnx_paths):
        if not Path(onnx).is_file():
            raise SearchError(f"{onnx} does not exist (export it first: python3 -m workload export)")
        source_node_names(onnx, model)


def check_data(models: Sequence[str], data_dir: str | Path, grid: Sequence[tuple[int, int]], int8: bool) -> None:
    """Every test file of the grid readable with its arrays; with INT8, each model's calibration set."""
    from evaluate import check_cases, select_cases
    from workload.data import check_calibration

    if not Path(data_dir).is_dir():
        raise SearchError(f"test data directory {data_dir} does not exist (python3 -m workload data)")
    for model in models:
        check_cases(model, select_cases(model, data_dir, grid, strict=True)[0])
        if int8:
            calib = Path(data_dir) / f"calibration-{model}.npz"
            if not calib.is_file():
                raise SearchError(f"--allow-int8 needs {calib} (python3 -m workload data)")
            check_calibration(calib, model)


def check_plugin_libraries(paths: Sequence[str]) -> None:
    from plugins.library import check_plugin_library

    for lib in paths:
        check_plugin_library(lib)
