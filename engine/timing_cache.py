"""Timing-cache files: read one for a build, merge it back after (parallel builds share one file per model:
each keeps the others' entries), atomic writes. The cache's bytes are the backend's business."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from engine.errors import first_line


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def read_timing_cache(path: Path, info: dict[str, Any]) -> bytes:
    """The file's bytes (b"" when absent: the backend starts an empty cache)."""
    data = path.read_bytes() if path.is_file() else b""
    info.update(path=str(path), loaded_bytes=len(data))
    return data


def save_timing_cache(path: Path, blob: bytes, loaded_stat, info: dict[str, Any],
                      merge: Callable[[bytes, bytes], bytes | None]) -> None:
    """Write the build's cache `blob`; when another build rewrote the file meanwhile, `merge` its entries in."""
    try:
        if path.is_file() and file_stat(path) != loaded_stat:
            merged = merge(blob, path.read_bytes())
            if merged:
                blob = merged
                info["merged"] = True
    except Exception as exc:
        info["note"] = f"merge with the file on disk failed ({first_line(exc)}): overwritten"
    if blob:
        atomic_write(path, blob)
    info["saved_bytes"] = len(blob)


def file_stat(path: Path):
    try:
        st = path.stat()
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return None
