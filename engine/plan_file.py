"""Engine files: missing or empty is a PlanError before any backend loads them (deserializing, with
TensorRT's own errors in the PlanError's one line: engine.trt_backend.deserialize)."""
from __future__ import annotations

from pathlib import Path
from engine.errors import PlanError

def check_plan_file(path: str | Path) -> Path:
    """An engine file that exists and is not empty (checked without TensorRT)."""
    path = Path(path)
    if not path.is_file():
        raise PlanError(f"engine file {path} does not exist")
    if path.stat().st_size == 0:
        raise PlanError(f"engine file {path} is empty")
    return path
