"""TensorRT timing caches: load one into a builder config, merge it back into the file after a build
(parallel builds share one file per model: each keeps the others' entries), atomic writes."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.errors import first_line


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def open_timing_cache(config, path: Path | None, info: dict[str, Any]):
    """Load `path` (if any) into a timing cache set on `config`; a cache from another GPU starts empty."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    info.update(path=str(path) if path else None, loaded_bytes=len(data))
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


def save_timing_cache(config, cache, path: Path, loaded_stat, info: dict[str, Any]) -> None:
    from engine.trt_compat import host_bytes

    current = config.get_timing_cache() if hasattr(config, "get_timing_cache") else None
    cache = current or cache
    try:   # another build may have written the file meanwhile: keep its entries too
        if path.is_file() and file_stat(path) != loaded_stat:
            other = config.create_timing_cache(path.read_bytes())
            if other is not None:
                cache.combine(other, False)
                info["merged"] = True
    except Exception as exc:
        info["note"] = f"merge with the file on disk failed ({first_line(exc)}): overwritten"
    blob = host_bytes(cache.serialize())
    if blob:
        atomic_write(path, blob)
    info["saved_bytes"] = len(blob)


def file_stat(path: Path):
    try:
        st = path.stat()
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return None
