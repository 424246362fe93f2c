"""engine.backend's Backend over TensorRT and cuda-python, both imported at first use (never at import).

Build: engine/trt_build.py. Run: the named-tensor API TensorRT 8.6, 10 and 11 share
(num_io_tensors, get_tensor_name/mode/dtype/shape, get_tensor_profile_shape,
set_optimization_profile_async, set_input_shape, set_tensor_address,
execute_async_v3). Polygraphy's TrtRunner is not used: it has no CUDA-graph replay, no
fixed buffer addresses per profile (a captured graph keeps them) and allocates through
its own CUDA wrapper (libcudart by ctypes), while engine/runtime.py chooses and pads to
a profile itself; its EngineFromBytes would hide TensorRT's deserialization errors
behind "Could not deserialize engine" (PlanError carries them).
"""
from __future__ import annotations

import json
import weakref
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from engine.backend_types import BuildJob, BuildOutput, TensorInfo
from engine.build_report import BuildReport
from engine.errors import EngineError, PlanError, first_line

REASONS = "built by another TensorRT version or GPU, not an engine file, or a plugin library is missing?"


def np_dtype(trt: Any, dtype: Any) -> np.dtype:
    """numpy dtype of a TensorRT DataType (trt.nptype, with a fallback by member name)."""
    try:
        return np.dtype(trt.nptype(dtype))
    except Exception:
        name = getattr(dtype, "name", str(dtype).split(".")[-1])
        table = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BOOL": np.bool_,
                 "UINT8": np.uint8, "INT64": np.int64}
        if name not in table:
            raise PlanError(f"engine tensor dtype {name} has no numpy equivalent") from None
        return np.dtype(table[name])


def deserialize(trt: Any, runtime: Any, logger: Any, blob: bytes, path: str | Path) -> Any:
    """runtime.deserialize_cuda_engine(blob); a PlanError carrying TensorRT's last errors when it returns None
    (they are held back from stderr meanwhile: they are the PlanError's text)."""
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


def engine_information(engine: Any, trt: Any) -> dict[str, Any]:
    """The inspector's JSON of a deserialized engine, parsed."""
    if not hasattr(engine, "create_engine_inspector"):
        raise EngineError("this TensorRT has no engine inspector (ICudaEngine.create_engine_inspector)")
    inspector = engine.create_engine_inspector()
    if inspector is None:
        raise EngineError("create_engine_inspector returned nothing")
    text = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    try:
        # TensorRT 8.6 writes raw control characters (newlines of Myelin node names) inside
        # strings ("Invalid control character" on the H200): accept them.
        info = json.loads(text, strict=False)
    except ValueError as exc:
        raise EngineError(f"the inspector's JSON does not parse: {first_line(exc)}") from None
    return {"Layers": info} if isinstance(info, list) else info     # be lenient: a bare layer list


class TrtContext:
    """An IExecutionContext on one profile."""

    def __init__(self, context: Any, trt: Any) -> None:
        self.context, self.trt, self._profiler = context, trt, None

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        return bool(self.context.set_input_shape(name, tuple(int(d) for d in shape)))

    def output_shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self.context.get_tensor_shape(name))

    def set_address(self, name: str, ptr: int) -> None:
        self.context.set_tensor_address(name, int(ptr))

    def execute(self, stream: Any) -> bool:
        from engine.cuda_runtime import CudaApi
        return bool(self.context.execute_async_v3(CudaApi.handle(stream)))

    def set_profiler(self, report: Callable[[str, float], None] | None) -> None:
        if report is None:
            try:                        # later enqueues of this context run unprofiled (fast) again
                self.context.profiler = None
            except (TypeError, ValueError):
                pass
            self._profiler = None
            return
        trt = self.trt

        class Profiler(trt.IProfiler):
            def __init__(self) -> None:
                trt.IProfiler.__init__(self)        # pybind11 trampolines need the base __init__

            def report_layer_time(self, layer_name: str, ms: float) -> None:
                report(layer_name, float(ms))
        self._profiler = Profiler()                 # must outlive the context's use of it
        self.context.profiler = self._profiler


class TrtEngine:
    """A deserialized ICudaEngine: its I/O tensors and profiles, contexts on demand."""

    def __init__(self, trt: Any, logger: Any, plan: bytes, path: str | Path) -> None:
        self.trt, self.logger, self.path = trt, logger, Path(path)
        self.runtime = trt.Runtime(logger)
        self.engine = deserialize(trt, self.runtime, logger, plan, path)
        e, mode = self.engine, trt.TensorIOMode.INPUT
        names = [e.get_tensor_name(i) for i in range(e.num_io_tensors)]
        self.tensors = [TensorInfo(n, e.get_tensor_mode(n) == mode, np_dtype(trt, e.get_tensor_dtype(n)),
                                   tuple(int(d) for d in e.get_tensor_shape(n))) for n in names]
        inputs = [t.name for t in self.tensors if t.is_input]
        for name in inputs:
            if hasattr(e, "is_shape_inference_io") and e.is_shape_inference_io(name):
                raise PlanError(f"input {name} is a shape tensor; TrtRunner feeds execution tensors only")
        count = int(getattr(e, "num_optimization_profiles", 1))
        self.profiles = [{n: tuple(tuple(int(d) for d in s) for s in e.get_tensor_profile_shape(n, k))
                          for n in inputs} for k in range(count)]
        self._held: weakref.WeakValueDictionary[int, TrtContext] = weakref.WeakValueDictionary()  # live contexts

    def create_context(self, profile: int, stream: Any) -> TrtContext:
        from engine.cuda_runtime import CudaApi, cuda_api

        held = self._held.get(profile)
        if held is not None and self._one_context_a_profile():
            # TensorRT 8.6 SIGSEGVs in set_optimization_profile_async on a profile another live
            # context holds (gputests-h200.log, 2026-12-03) instead of returning false: refuse here
            raise PlanError(f"{self.path.name}: TensorRT refused optimization profile {profile}: another "
                            f"context of this engine holds it (TensorRT < 10 gives each profile one context)")
        sink = self.logger.sink
        sink.clear_errors()
        context = self.engine.create_execution_context()
        if context is None:
            errors = " | ".join(sink.last_errors(2))
            raise PlanError(f"cannot create an execution context for {self.path}"
                            + (f": {errors}" if errors else " (out of GPU memory?)"))
        if profile != 0 or len(self.profiles) > 1:
            sink.clear_errors()
            try:
                ok = context.set_optimization_profile_async(profile, CudaApi.handle(stream))
            except RuntimeError:          # the Python binding raises where the C++ call returns false
                ok = False
            cuda_api().stream_sync(stream)
            if ok is False:
                errors = " | ".join(sink.last_errors(2))
                # a refused context must die now, before its engine: the traceback keeps this frame's
                # locals alive, and TensorRT 8.6 SIGSEGVs destroying a context after its engine
                context = None
                raise PlanError(f"{self.path.name}: TensorRT refused optimization profile {profile}"
                                + (f": {errors}" if errors else ""))
        wrapped = TrtContext(context, self.trt)
        self._held[profile] = wrapped
        return wrapped

    def _one_context_a_profile(self) -> bool:
        from engine.trt_compat import trt_version
        return trt_version(self.trt)[0] < 10

    def close(self) -> None:
        self.engine = None           # contexts (held by the runner) go first, then the engine, then the runtime
        self.runtime = None


class TrtBackend:
    """engine.backend.Backend over the installed TensorRT."""

    def __init__(self) -> None:
        from engine.log_sink import process_sink
        self.sink = process_sink()

    def _trt(self):
        from engine.trt_compat import get_logger, import_tensorrt
        trt = import_tensorrt()
        return trt, get_logger(trt)

    def version(self) -> str:
        return str(getattr(self._trt()[0], "__version__", ""))

    def capabilities(self):
        from engine.trt_compat import capabilities
        return capabilities(self._trt()[0])

    def device(self):
        from engine.cuda_runtime import cuda_api
        return cuda_api()

    def gpu_name(self) -> str:
        from engine.cuda_runtime import gpu_name
        return gpu_name()

    def environment(self) -> dict[str, Any]:
        cuda = self.device()
        return {"tensorrt": self.version(), "cuda_python": cuda.flavor, "gpu": cuda.device_name(),
                "cuda_runtime": cuda.call("cudaRuntimeGetVersion"), "cuda_driver": cuda.call("cudaDriverGetVersion")}

    def load_plugins(self, libs: Sequence[str | Path] = ()) -> str | None:
        """Load plugin libraries (errors raise); None, or why the built-in plugins could not be initialised."""
        from plugins.library import init_builtin_plugins, load_plugin_libraries

        trt, logger = self._trt()
        load_plugin_libraries(libs)
        try:
            init_builtin_plugins(logger)
        except Exception as exc:
            return f"init_libnvinfer_plugins failed: {first_line(exc)}"
        return None

    def plugin_creators(self) -> list[tuple[str, str]]:
        from plugins.library import plugin_creators
        return plugin_creators()

    def build(self, job: BuildJob, report: BuildReport) -> BuildOutput:
        from engine.trt_build import build_plan
        trt, logger = self._trt()
        return build_plan(trt, logger, job, report)

    def merge_timing_caches(self, ours: bytes, theirs: bytes) -> bytes | None:
        from engine.trt_build import merge_timing_caches
        return merge_timing_caches(*self._trt(), ours, theirs)

    def load(self, plan: bytes, path: str | Path) -> TrtEngine:
        return TrtEngine(*self._trt(), plan, path)

    def inspect(self, plan: bytes, path: str | Path) -> dict[str, Any]:
        trt, logger = self._trt()
        runtime = trt.Runtime(logger)
        engine = deserialize(trt, runtime, logger, plan, path)
        try:
            return engine_information(engine, trt)
        finally:
            del engine, runtime
