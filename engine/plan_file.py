"""Engine files: read (missing or empty: PlanError) and deserialize, TensorRT's own errors in the
PlanError's one line instead of on stderr (a truncated or foreign file is one `error: ...` line).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import PlanError

REASONS = "built by another TensorRT version or GPU, not an engine file, or a plugin library is missing?"


def check_plan_file(path: str | Path) -> Path:
    """An engine file that exists and is not empty (checked without TensorRT)."""
    path = Path(path)
    if not path.is_file():
        raise PlanError(f"engine file {path} does not exist")
    if path.stat().st_size == 0:
        raise PlanError(f"engine file {path} is empty")
    return path


def deserialize(trt: Any, runtime: Any, logger: Any, blob: bytes, path: str | Path) -> Any:
    """runtime.deserialize_cuda_engine(blob); a PlanError carrying TensorRT's last errors when it returns None.

    `logger` is engine.trt_compat.get_logger's: its errors are held back from stderr meanwhile
    (they are the PlanError's text).
    """
    sink = logger.sink
    sink.clear_errors()
    echo, sink.echo_level = sink.echo_level, -1
    try:
        engine = runtime.deserialize_cuda_engine(blob)
    finally:
        sink.echo_level = echo
    if engine is None:
        errors = " | ".join(sink.last_errors(2))
        raise PlanError(f"TensorRT {getattr(trt, '__version__', '?')} cannot load {path}"
                        + (f": {errors}" if errors else "") + f" ({REASONS})")
    return engine
