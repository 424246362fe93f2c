"""Shared bits of the bench scripts: repo path, environment record, GPU slug, atomic JSON writes.

numpy and the standard library only: imported by both the TensorRT Python
(bench/baseline.py) and the torch Python (bench/torch_baselines.py).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def ensure_repo_on_path() -> None:
    """Scripts run as `python bench/x.py` get bench/ as sys.path[0]; the packages live in the repo root."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def gpu_slug(name: str) -> str:
    """search.toolkit.gpu_slug: one slug for result files and timing caches ('NVIDIA H200' -> 'h200')."""
    ensure_repo_on_path()
    from search.toolkit import gpu_slug as slug

    return slug(name)


def base_record(gpu: str | None = None) -> dict[str, Any]:
    """GPU, versions, date and command of a result file; fields that cannot be read are None."""
    rec: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable)] + sys.argv),
        "python": platform.python_version(),
        "gpu": gpu,
        "tensorrt": None,
        "torch": None,
    }
    try:
        import tensorrt  # noqa: F401
        rec["tensorrt"] = str(tensorrt.__version__)
    except Exception:
        pass
    try:
        import torch
        rec["torch"] = str(torch.__version__)
    except Exception:
        pass
    return rec


def write_json(path: str | Path, data: Any) -> Path:
    """Written aside and renamed into place: a command killed mid-write leaves the previous file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_default))
    os.replace(tmp, path)
    return path


def _default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return str(obj)


def finite_or_none(x: float | None) -> float | None:
    import math
    return x if x is not None and math.isfinite(x) else None


def wait_for_file(path: str | Path | None, timeout_s: float, what: str = "") -> bool:
    """Poll until `path` exists (True) or `timeout_s` passes (False); no path: True at once.
    The bench processes of one session hand over through such flag files."""
    import time

    if not path:
        return True
    t0 = time.monotonic()
    while not Path(path).exists():
        if time.monotonic() - t0 > timeout_s:
            if what:
                print(f"gave up waiting for {what} ({path})", flush=True)
            return False
        time.sleep(2)
    return True


def write_diag_record(path: str | Path, results: dict, **extra: Any) -> Path:
    """A bench/diag script's output: the environment record (GPU from nvidia-smi) plus its per-case results."""
    import subprocess
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                         text=True).stdout.strip()
    return write_json(path, {**base_record(gpu), **extra, "results": results, "rows": [],
                             "rows_note": DIAG_ROWS_NOTE})


# A diag record is build and run outcomes per case (exit status, TensorRT's errors), no latency per shape.
DIAG_ROWS_NOTE = "no rows: the cases are TensorRT build/run outcomes (see results), not per-shape measurements"
