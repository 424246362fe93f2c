"""Loading TensorRT plugin libraries and listing the plugin registry.

The contest harness loads every `*.so` in its working directory before it
deserializes the engines, so plugin libraries (ours, built from plugins/src by
plugins/build_plugins.sh, and user-supplied ones; TensorRT 8.6 has no Python plugin
API) go through `load_plugin_libraries`. TensorRT is imported
lazily so this module imports on a CPU-only machine.
"""
from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

from workload.errors import OneLineError

log = logging.getLogger(__name__)

_LOADED: dict[str, ctypes.CDLL] = {}   # resolved path -> handle; keeps libraries alive for the process
_TRT_LOGGER = None


class PluginLibraryError(OneLineError, RuntimeError):
    """A plugin library that cannot be loaded (missing file, not a shared object, unresolved symbols)."""


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def check_plugin_library(p: str | os.PathLike) -> Path:
    """A plugin library that exists and is a shared object (ELF), checked without loading it."""
    path = Path(p).expanduser()
    if not path.is_file():
        raise PluginLibraryError(f"plugin library {path} does not exist")
    if not _is_elf(path):
        raise PluginLibraryError(f"plugin library {path} is not a shared object (no ELF header)")
    return path


def load_plugin_libraries(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """dlopen each library with RTLD_GLOBAL so its REGISTER_TENSORRT_PLUGIN creators reach the registry.

    Returns the resolved paths (each loaded once per process). Raises
    PluginLibraryError naming the first file that is missing or not loadable.
    """
    loaded: list[Path] = []
    for p in paths:
        path = check_plugin_library(p)
        resolved = path.resolve()
        key = str(resolved)
        if key not in _LOADED:
            try:
                _LOADED[key] = ctypes.CDLL(key, mode=ctypes.RTLD_GLOBAL)
            except OSError as exc:
                # dlerror's text is one line: undefined symbol, wrong architecture, missing dependency...
                raise PluginLibraryError(f"cannot load plugin library {path}: {exc}") from None
            log.info("loaded plugin library %s", resolved)
        loaded.append(resolved)
    return loaded


def discover_plugin_libraries(directory: str | os.PathLike = ".") -> list[Path]:
    """Every `*.so` in `directory` (not recursive), sorted, as the contest harness loads them."""
    d = Path(directory)
    if not d.is_dir():
        raise PluginLibraryError(f"plugin directory {d} does not exist")
    return sorted(p for p in d.glob("*.so") if p.is_file())


def loaded_libraries() -> list[Path]:
    return [Path(k) for k in _LOADED]


def init_builtin_plugins(logger=None) -> bool:
    """Register libnvinfer_plugin's creators (trt.init_libnvinfer_plugins); idempotent.

    The ONNX parser also does this when it parses, but building from a network made
    elsewhere or deserializing an engine that uses library plugins needs it first.
    """
    global _TRT_LOGGER
    import tensorrt as trt  # lazy: GPU host only

    if logger is None:
        if _TRT_LOGGER is None:
            _TRT_LOGGER = trt.Logger(trt.Logger.WARNING)
        logger = _TRT_LOGGER
    return bool(trt.init_libnvinfer_plugins(logger, ""))


def plugin_creators() -> list[tuple[str, str]]:
    """(name, version) of every creator in TensorRT's plugin registry, sorted.

    Call after init_builtin_plugins() and load_plugin_libraries() to see everything
    an engine build can use.
    """
    import tensorrt as trt  # lazy: GPU host only

    registry = trt.get_plugin_registry()
    # TensorRT 10's all_creators also lists IPluginCreatorV3One creators; 8.6 has only plugin_creator_list.
    creators = getattr(registry, "all_creators", None)
    if creators is None:
        creators = registry.plugin_creator_list
    return sorted({(c.name, str(c.plugin_version)) for c in creators})


def missing_creators(required: Sequence[tuple[str, str]], available: Iterable[tuple[str, ...]]) -> list[tuple[str, str]]:
    """The (name, version) pairs in `required` that no available creator provides."""
    have = {(a[0], a[1]) for a in available}
    return [r for r in required if (r[0], r[1]) not in have]
