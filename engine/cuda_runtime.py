"""The CUDA runtime through cuda-python (`cuda.bindings.runtime`, or the older `cuda.cudart`).

Imported inside functions, like tensorrt: the module imports on a machine without them.
"""
from __future__ import annotations

import logging
from typing import Any

from engine.errors import CudaError, TensorRTMissing, first_line
from engine.trt_compat import INSTALL_HINT

log = logging.getLogger("engine")


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

    def self_test(self) -> str:
        """A bad device is a CudaError with its name; then malloc/free/stream/event work (the probe's check)."""
        try:
            self.call("cudaSetDevice", 9999)
        except CudaError as exc:
            self.rt.cudaGetLastError()            # clear it: TensorRT must not see a stale error later
            ptr = self.malloc(1024)
            self.free(ptr)
            stream = self.stream_create()
            ev = self.event_create()
            self.event_record(ev, stream)
            self.event_sync(ev)
            self.event_destroy(ev)
            self.stream_destroy(stream)
            return f"bad device -> {exc}; malloc/free/stream/event ok"
        raise AssertionError("cudaSetDevice(9999) did not fail")

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
