"""Version-tolerant access to TensorRT and the CUDA runtime (cuda-python).

Everything here imports `tensorrt` / `cuda` inside functions, so the module
imports on a machine without them. What exists is discovered at run time
(enum members, IBuilderConfig properties), never assumed from a version number:
TensorRT 8.6, 10 and 11 differ in flags (10 deprecates EXPLICIT_BATCH, 11 drops
FP16/INT8 flags, precision constraints and the INT8 calibrators), tactic sources
and builder properties (IProgressMonitor only from 10).
"""
from __future__ import annotations

import collections
import logging
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from engine.errors import CudaError, TensorRTMissing, first_line
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
# process-wide instance, whose file can be switched per build.
_LOGGER = None
_LOGGER_LOCK = threading.Lock()
SEVERITY_NAMES = {0: "INTERNAL_ERROR", 1: "ERROR", 2: "WARNING", 3: "INFO", 4: "VERBOSE"}


class _LogSink:
    """The Python side of the TensorRT logger (no TensorRT needed: testable on CPU)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.file = None
        self.file_level = 3            # INFO and more severe go to the file
        self.echo_level = 2            # WARNING and more severe go to stderr when no file is open
        self.recent_errors: collections.deque[str] = collections.deque(maxlen=20)

    def write(self, level: int, msg: str) -> None:
        msg = str(msg).rstrip()
        with self.lock:
            if level <= 1:
                self.recent_errors.append(msg)
            if self.file is not None:
                if level <= self.file_level:
                    self.file.write(f"{time.strftime('%H:%M:%S')} [{SEVERITY_NAMES.get(level, level)}] {msg}\n")
                    self.file.flush()
                echo = level <= 1
            else:
                echo = level <= self.echo_level
        if echo:
            print(f"[TensorRT {SEVERITY_NAMES.get(level, level)}] {msg}", file=sys.stderr)

    @contextmanager
    def to_file(self, path: str | Path | None, verbose: bool = False) -> Iterator[None]:
        """Send messages to `path` (overwritten) while the block runs; only errors reach stderr."""
        if path is None:
            yield
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "w", encoding="utf-8")
        with self.lock:
            previous, previous_level = self.file, self.file_level
            self.file, self.file_level = fh, 4 if verbose else 3
        try:
            yield
        finally:
            with self.lock:
                self.file, self.file_level = previous, previous_level
            fh.close()

    def last_errors(self, n: int = 3) -> list[str]:
        with self.lock:
            return list(self.recent_errors)[-n:]

    def clear_errors(self) -> None:
        with self.lock:
            self.recent_errors.clear()


def get_logger(trt=None):
    """The process-wide TensorRT logger (a trt.ILogger feeding a _LogSink, attribute `sink`)."""
    global _LOGGER
    with _LOGGER_LOCK:
        if _LOGGER is None:
            trt = trt or import_tensorrt()
            sink = _LogSink()

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


# --- progress (IProgressMonitor on TensorRT >= 10) ------------------------------------
class PhaseTracker:
    """Nested build phases and their step counts, as IProgressMonitor reports them (CPU-testable)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.phases: dict[str, list] = {}     # name -> [parent, steps, done]
        self.order: list[str] = []

    def start(self, name: str, parent: str | None, steps: int) -> None:
        with self.lock:
            self.phases[name] = [parent, int(steps), 0]
            if name in self.order:
                self.order.remove(name)
            self.order.append(name)

    def step(self, name: str, step: int) -> None:
        with self.lock:
            if name in self.phases:
                self.phases[name][2] = int(step) + 1

    def finish(self, name: str) -> None:
        with self.lock:
            self.phases.pop(name, None)
            if name in self.order:
                self.order.remove(name)

    def describe(self) -> str:
        with self.lock:
            return " > ".join(f"{n} {self.phases[n][2]}/{self.phases[n][1]}" for n in self.order)


def make_progress_monitor(tracker: PhaseTracker, trt=None):
    """A trt.IProgressMonitor feeding `tracker`, or None where TensorRT has no IProgressMonitor (8.6)."""
    trt = trt or import_tensorrt()
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class Monitor(base):
        def __init__(self) -> None:
            base.__init__(self)
            self.tracker = tracker

        def phase_start(self, phase_name, parent_phase, num_steps):
            try:
                self.tracker.start(str(phase_name), parent_phase, num_steps)
            except Exception:
                pass

        def step_complete(self, phase_name, step):
            try:
                self.tracker.step(str(phase_name), step)
            except Exception:
                pass
            return True       # False would cancel the build

        def phase_finish(self, phase_name):
            try:
                self.tracker.finish(str(phase_name))
            except Exception:
                pass

    return Monitor()


class ElapsedIndicator:
    """A background line 'building encoder: 95 s [phase 3/10]' on stderr while a build runs.

    On a terminal it rewrites one line; otherwise it prints a line every `every_s`
    seconds (logs stay short). Uses tqdm when installed and stderr is a terminal.
    """

    def __init__(self, label: str, tracker: PhaseTracker | None = None, every_s: float = 30.0,
                 stream=None) -> None:
        self.label = label
        self.tracker = tracker
        self.every_s = every_s
        self.stream = stream or sys.stderr
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t0 = 0.0

    def _text(self) -> str:
        phase = self.tracker.describe() if self.tracker is not None else ""
        return f"{self.label}: {time.monotonic() - self.t0:.0f} s" + (f" [{phase}]" if phase else "")

    def _run(self) -> None:
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        bar = None
        if tty:
            try:
                from tqdm import tqdm
                bar = tqdm(total=None, desc=self.label, bar_format="{desc}: {elapsed} {postfix}", file=self.stream)
            except ImportError:
                bar = None
        last = time.monotonic()
        while not self._stop.wait(1.0 if tty else max(0.05, min(self.every_s, 5.0))):
            if bar is not None:
                bar.set_postfix_str(self.tracker.describe() if self.tracker else "", refresh=True)
            elif tty:
                print("\r" + self._text(), end="", file=self.stream, flush=True)
            elif time.monotonic() - last >= self.every_s:
                print(self._text(), file=self.stream, flush=True)
                last = time.monotonic()
        if bar is not None:
            bar.close()
        elif tty:
            print("\r" + self._text(), file=self.stream, flush=True)

    def __enter__(self) -> "ElapsedIndicator":
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="build-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


# --- CUDA runtime (cuda-python) ----------------------------------------------------------
class CudaApi:
    """The CUDA runtime module of cuda-python plus a checked-call helper.

    cuda-python returns (error, value...) tuples; `check` raises CudaError with the
    error's name unless it is cudaSuccess and returns the value(s).
    """

    def __init__(self, rt: Any, flavor: str) -> None:
        self.rt = rt
        self.flavor = flavor                       # "cuda.bindings.runtime" or "cuda.cudart"
        self.success = rt.cudaError_t.cudaSuccess

    def error_name(self, err: Any) -> str:
        try:
            res = self.rt.cudaGetErrorName(err)
            name = res[1] if isinstance(res, tuple) else res
            name = name.decode() if isinstance(name, bytes) else str(name)
        except Exception:
            name = str(err)
        try:
            res = self.rt.cudaGetErrorString(err)
            desc = res[1] if isinstance(res, tuple) else res
            desc = desc.decode() if isinstance(desc, bytes) else str(desc)
        except Exception:
            desc = ""
        return f"{name} ({desc})" if desc and desc != name else name

    def check(self, result: Any, what: str = "CUDA call") -> Any:
        err, rest = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
        if err != self.success:
            raise CudaError(f"{what} failed: {self.error_name(err)}")
        if not rest:
            return None
        return rest[0] if len(rest) == 1 else rest

    def call(self, name: str, *args: Any) -> Any:
        fn = getattr(self.rt, name, None)
        if fn is None:
            raise CudaError(f"{self.flavor} has no {name}")
        return self.check(fn(*args), name)

    # The calls engine/ uses, in one place.
    def malloc(self, nbytes: int) -> int:
        return int(self.call("cudaMalloc", max(int(nbytes), 1)))

    def free(self, ptr: int) -> None:
        if ptr:
            self.call("cudaFree", ptr)

    def memcpy_htod_async(self, dst: int, host_ptr: int, nbytes: int, stream: Any) -> None:
        if nbytes:
            self.call("cudaMemcpyAsync", dst, host_ptr, nbytes,
                      self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream)

    def memcpy_dtoh_async(self, host_ptr: int, src: int, nbytes: int, stream: Any) -> None:
        if nbytes:
            self.call("cudaMemcpyAsync", host_ptr, src, nbytes,
                      self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream)

    def stream_create(self) -> Any:
        return self.call("cudaStreamCreate")

    def stream_sync(self, stream: Any) -> None:
        self.call("cudaStreamSynchronize", stream)

    def stream_destroy(self, stream: Any) -> None:
        self.call("cudaStreamDestroy", stream)

    def event_create(self) -> Any:
        return self.call("cudaEventCreate")

    def event_record(self, event: Any, stream: Any) -> None:
        self.call("cudaEventRecord", event, stream)

    def event_sync(self, event: Any) -> None:
        self.call("cudaEventSynchronize", event)

    def event_elapsed_ms(self, start: Any, end: Any) -> float:
        return float(self.call("cudaEventElapsedTime", start, end))

    def event_destroy(self, event: Any) -> None:
        self.call("cudaEventDestroy", event)

    # CUDA graphs: capture one enqueue on a stream, replay it with one launch.
    def begin_capture(self, stream: Any) -> None:
        # Thread-local: another thread's unrelated CUDA calls do not break our capture (as trtexec).
        self.call("cudaStreamBeginCapture", stream, self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal)

    def end_capture(self, stream: Any) -> Any:
        return self.call("cudaStreamEndCapture", stream)

    def graph_instantiate(self, graph: Any) -> Any:
        return self.call("cudaGraphInstantiate", graph, 0)

    def graph_launch(self, graph_exec: Any, stream: Any) -> None:
        self.call("cudaGraphLaunch", graph_exec, stream)

    def graph_destroy(self, graph: Any) -> None:
        if graph is not None:
            self.call("cudaGraphDestroy", graph)

    def graph_exec_destroy(self, graph_exec: Any) -> None:
        self.call("cudaGraphExecDestroy", graph_exec)

    def clear_capture_error(self, stream: Any) -> None:
        """After a failed capture: leave capture mode if still in it, and clear the error it left."""
        try:
            status = self.call("cudaStreamIsCapturing", stream)
            if status != self.rt.cudaStreamCaptureStatus.cudaStreamCaptureStatusNone:
                res = self.rt.cudaStreamEndCapture(stream)
                graph = res[1] if isinstance(res, tuple) and len(res) > 1 else None
                if graph is not None:
                    self.rt.cudaGraphDestroy(graph)
        except Exception:
            pass
        self.rt.cudaGetLastError()

    def device_name(self, device: int | None = None) -> str:
        if device is None:
            device = int(self.call("cudaGetDevice"))
        props = self.call("cudaGetDeviceProperties", device)
        name = props.name
        if isinstance(name, (bytes, bytearray)):
            name = bytes(name).split(b"\0", 1)[0].decode(errors="replace")
        return str(name).strip()

    @staticmethod
    def handle(obj: Any) -> int:
        """The integer value of a cudaStream_t / pointer (what TensorRT's Python API takes)."""
        if isinstance(obj, int):
            return obj
        try:
            return int(obj)
        except TypeError:
            return int(obj.getPtr())


_CUDA: CudaApi | None = None


def cuda_api() -> CudaApi:
    """cuda-python's runtime: `cuda.bindings.runtime` (cuda-python >= 12.6) or legacy `cuda.cudart`."""
    global _CUDA
    if _CUDA is None:
        try:
            from cuda.bindings import runtime as rt
            flavor = "cuda.bindings.runtime"
        except ImportError:
            try:
                from cuda import cudart as rt   # older cuda-python
                flavor = "cuda.cudart"
            except ImportError as exc:
                raise TensorRTMissing(f"cannot import the CUDA runtime of cuda-python ({first_line(exc)}); "
                                      f"install cuda-python (`pip install cuda-python`) in the TensorRT Python, "
                                      f"or {INSTALL_HINT}") from None
        _CUDA = CudaApi(rt, flavor)
    return _CUDA


def gpu_name() -> str:
    """The current CUDA device's name; 'unknown GPU' when it cannot be read."""
    try:
        return cuda_api().device_name()
    except Exception as exc:
        log.debug("gpu name unavailable: %s", exc)
        return "unknown GPU"
