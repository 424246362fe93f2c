"""Version-tolerant access to TensorRT (the CUDA runtime: engine/cuda_runtime.py; build progress:
engine/build_progress.py).

Everything here imports `tensorrt` / `cuda` inside functions, so the module
imports on a machine without them. What exists is discovered at run time
(enum members, IBuilderConfig properties), never assumed from a version number:
TensorRT 8.6, 10 and 11 differ in flags (10 deprecates EXPLICIT_BATCH, 11 drops
FP16/INT8 flags, precision constraints and the INT8 calibrators), tactic sources
and builder properties (IProgressMonitor only from 10).
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from engine.errors import TensorRTMissing, first_line
from engine.log_sink import process_sink
from engine.settings import CONFIG_ATTRS, Capabilities

log = logging.getLogger("engine")

INSTALL_HINT = ("run it with a Python that has TensorRT: on the GPU host `. /root/rig/env.sh && python3.10` "
                "(see shared/gpu/README.md); elsewhere `pip install tensorrt cuda-python` on a machine with an "
                "NVIDIA GPU and driver")


def import_tensorrt():
    """The tensorrt module, or TensorRTMissing with one line saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise TensorRTMissing(f"cannot import tensorrt ({first_line(exc)}); {INSTALL_HINT}") from None
    return trt


def trt_version(trt=None) -> tuple[int, ...]:
    """(major, minor, patch, ...) of the installed TensorRT, from `tensorrt.__version__`."""
    trt = trt or import_tensorrt()
    return parse_version(getattr(trt, "__version__", "0"))


def parse_version(text: str) -> tuple[int, ...]:
    """'10.13.0.35' -> (10, 13, 0, 35); stops at the first part that does not start with a digit ('0rc1' -> 0)."""
    import re

    parts = []
    for piece in str(text).split("."):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
        if m.end() != len(piece):
            break
    return tuple(parts) or (0,)


def enum_members(enum: Any) -> dict[str, Any]:
    """name -> value of a pybind11 enum (its __members__), in declaration order."""
    members = getattr(enum, "__members__", None)
    if members is not None:
        return dict(members)
    return {n: getattr(enum, n) for n in dir(enum) if n.isupper() and not n.startswith("_")}


def capabilities(trt=None) -> Capabilities:
    """What the installed TensorRT offers, as plain data (see engine.settings.Capabilities)."""
    trt = trt or import_tensorrt()
    cfg_cls = getattr(trt, "IBuilderConfig", None)
    calibrators = frozenset(name for name, cls in (("entropy2", "IInt8EntropyCalibrator2"),
                                                    ("minmax", "IInt8MinMaxCalibrator"))
                            if hasattr(trt, cls))
    return Capabilities(
        version=trt_version(trt),
        builder_flags=frozenset(enum_members(getattr(trt, "BuilderFlag", None))),
        tactic_sources=tuple(enum_members(getattr(trt, "TacticSource", None))),
        memory_pools=frozenset(enum_members(getattr(trt, "MemoryPoolType", None))),
        config_attrs=frozenset(a for a in CONFIG_ATTRS if cfg_cls is not None and hasattr(cfg_cls, a)),
        calibrators=calibrators,
        progress_monitor=hasattr(trt, "IProgressMonitor") and cfg_cls is not None
        and hasattr(cfg_cls, "progress_monitor"),
        inspector=hasattr(getattr(trt, "ICudaEngine", object), "create_engine_inspector"),
        profiling_verbosity=frozenset(enum_members(getattr(trt, "ProfilingVerbosity", None))),
        preview_features=frozenset(enum_members(getattr(trt, "PreviewFeature", None))),
        cudnn=cudnn_loadable(trt),
    )


# cuDNN sub-libraries TensorRT loads through cuDNN's small loader, by TensorRT major version.
CUDNN_SUBLIBS = {8: ("libcudnn_ops_infer.so.8",), 10: ("libcudnn_ops_infer.so.8", "libcudnn_ops.so.9")}


def cudnn_loadable(trt=None) -> bool:
    """Whether the cuDNN that this TensorRT links against can really be loaded here.

    The GPU host's rig ships only cuDNN 8's loader: TensorRT 8.6 then builds, but
    aborts the whole process (std::abort in cuDNN's loader) when it serializes a
    timing cache, and the CUDNN tactic source has no kernels.
    """
    import ctypes

    trt = trt or import_tensorrt()
    libs = CUDNN_SUBLIBS[8] if trt_version(trt)[0] < 10 else CUDNN_SUBLIBS[10]
    for lib in libs:
        try:
            ctypes.CDLL(lib)
            return True
        except OSError:
            continue
    return False


def network_flags(trt=None) -> int:
    """create_network flags: EXPLICIT_BATCH before TensorRT 10 (deprecated in 10, gone in 11)."""
    trt = trt or import_tensorrt()
    flags_enum = getattr(trt, "NetworkDefinitionCreationFlag", None)
    explicit = enum_members(flags_enum).get("EXPLICIT_BATCH") if flags_enum is not None else None
    if explicit is not None and trt_version(trt)[0] < 10:
        return 1 << int(explicit)
    return 0


def host_bytes(buffer: Any) -> bytes:
    """Bytes of an IHostMemory / memoryview / bytes (TensorRT's serialized plans and caches)."""
    if buffer is None:
        return b""
    if isinstance(buffer, bytes):
        return buffer
    try:
        return memoryview(buffer).tobytes()
    except TypeError:
        return bytes(buffer)


# --- logging ----------------------------------------------------------------------
# TensorRT keeps the first logger it is given for process-wide messages, and a
# Python logger object must outlive every builder/runtime that uses it: one
# process-wide instance feeding engine.log_sink's sink, whose file can be switched per build.
_LOGGER = None
_LOGGER_LOCK = threading.Lock()


def get_logger(trt=None):
    """The process-wide TensorRT logger (a trt.ILogger feeding engine.log_sink's sink, attribute `sink`)."""
    global _LOGGER
    with _LOGGER_LOCK:
        if _LOGGER is None:
            trt = trt or import_tensorrt()
            sink = process_sink()

            class SinkLogger(trt.ILogger):
                def __init__(self) -> None:
                    trt.ILogger.__init__(self)    # pybind11 trampolines need the base __init__
                    self.sink = sink

                def log(self, severity, msg):     # called by TensorRT, from any thread
                    try:
                        level = int(severity)
                    except (TypeError, ValueError):
                        level = 3
                    try:
                        self.sink.write(level, msg)
                    except Exception:  # never raise into TensorRT
                        pass

            _LOGGER = SinkLogger()
        return _LOGGER
