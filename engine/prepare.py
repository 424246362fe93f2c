"""Source ONNX + the config's graph passes and plugin rewrites -> the ONNX that gets built, cached.

The cache key is (source file content hash, pass list, plugin list): trials that
differ only in builder knobs reuse one prepared file. Beside each prepared
`<model>-<key>.onnx` lies `<model>-<key>.json` with the sites each pass rewrote.
Files are written aside and renamed into place, so concurrent trials (one per
GPU) never read half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import BuildConfig
from engine.errors import PrepareError, first_line

PREPARE_VERSION = 1          # bump when the preparation itself changes meaning


@dataclass
class PreparedOnnx:
    """The ONNX to build and what the rewrites did. (Not os.PathLike on purpose: callers read .path and .sites.)"""
    path: Path
    sites: dict[str, int] = field(default_factory=dict)
    key: str = ""
    cached: bool = False

    def __str__(self) -> str:
        return str(self.path)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(source_hash: str, passes: list[str], plugins: list[str]) -> str:
    text = json.dumps({"v": PREPARE_VERSION, "src": source_hash, "passes": list(passes), "plugins": list(plugins)},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _atomic_write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def prepare_onnx(src_onnx: str | Path, config: BuildConfig, cache_dir: str | Path) -> PreparedOnnx:
    """The ONNX for `config`: the source itself when there is nothing to rewrite, else a cached rewrite."""
    src = Path(src_onnx)
    if not src.is_file():
        raise PrepareError(f"ONNX model {src} does not exist (export it with `python -m workload export`)")
    if not config.passes and not config.plugins:
        return PreparedOnnx(src, {}, "", False)

    key = cache_key(file_sha256(src), config.passes, config.plugins)
    cache = Path(cache_dir)
    out = cache / f"{config.model}-{key}.onnx"
    meta_path = out.with_suffix(".json")
    if out.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            return PreparedOnnx(out, {k: int(v) for k, v in meta["sites"].items()}, key, True)
        except (ValueError, KeyError, TypeError):
            pass            # a damaged sidecar: prepare again

    import onnx

    from candidates import apply_passes

    try:
        model = onnx.load(str(src))
    except Exception as exc:
        raise PrepareError(f"cannot read ONNX model {src}: {first_line(exc)}") from None
    sites: dict[str, int] = {}
    if config.passes:
        model, s = apply_passes(model, config.passes, model_name=config.model)
        sites.update(s)
    if config.plugins:
        from plugins import apply_plugins

        model, s = apply_plugins(model, config.plugins, model_name=config.model)
        sites.update(s)

    cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, out)
    _atomic_write_json(meta_path, {"source": str(src), "model": config.model, "passes": list(config.passes),
                                   "plugins": list(config.plugins), "sites": sites, "key": key,
                                   "version": PREPARE_VERSION})
    return PreparedOnnx(out, sites, key, False)
