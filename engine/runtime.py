"""Run an engine by tensor name: TrtRunner(plan).infer(feeds) and .time(feeds).

Uses only the API TensorRT 8.6, 10 and 11 share: named I/O tensors
(num_io_tensors, get_tensor_name/mode/dtype), set_input_shape,
set_tensor_address, execute_async_v3; CUDA through cuda-python. One execution
context on optimization profile 0, as the contest's harness.

Timing modes:
- "robust": CUDA events around each execute_async_v3 after warm-up; the median of
  the runs (default 10 warm-up, 30 runs). What the search optimizes.
- "contest": the harness's loop: warm-up runs, then `runs` executions each followed
  by a stream synchronize, timed as a whole with time.time_ns; the mean
  (CONTEST_LOOPS: encoder 2 + 2, decoder 10 + 30).
"""
from __future__ import annotations

import statistics
import time as _time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from engine.errors import InferenceError, InputError, PlanError

# (warm-up runs, timed runs) of the contest's testEncoderAndDecoder.py
CONTEST_LOOPS = {"encoder": (2, 2), "decoder": (10, 30)}
ROBUST_DEFAULTS = (10, 30)
MODES = ("robust", "contest")


# --- pure helpers (CPU-testable) ------------------------------------------------------
def check_feed_names(expected: Sequence[str], given: Iterable[str]) -> None:
    """InputError naming the expected inputs when a feed is missing or unexpected."""
    given = list(given)
    missing = [n for n in expected if n not in given]
    extra = [n for n in given if n not in expected]
    if missing or extra:
        what = []
        if missing:
            what.append(f"missing {missing}")
        if extra:
            what.append(f"unexpected {extra}")
        raise InputError(f"feeds do not match the engine's inputs: {'; '.join(what)}; "
                         f"expected exactly {list(expected)}")


def cast_feed(name: str, value: Any, dtype: np.dtype) -> np.ndarray:
    """`value` as a C-contiguous array of the engine's dtype; InputError where the cast would lose meaning."""
    arr = np.asarray(value)
    dtype = np.dtype(dtype)
    if arr.dtype == dtype:
        return np.ascontiguousarray(arr)
    src, dst = arr.dtype.kind, dtype.kind
    if src == "f" and dst in "iub":
        raise InputError(f"input {name}: {arr.dtype} data for a {dtype} engine input (refusing to truncate floats)")
    if src in "iu" and dst in "iu" and arr.size:
        info = np.iinfo(dtype)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < info.min or hi > info.max:
            raise InputError(f"input {name}: values {lo}..{hi} do not fit the engine's {dtype}")
    if src not in "biuf" or dst not in "biuf":
        raise InputError(f"input {name}: cannot cast {arr.dtype} to the engine's {dtype}")
    return np.ascontiguousarray(arr.astype(dtype))


def check_rank(name: str, shape: Sequence[int], engine_shape: Sequence[int]) -> None:
    """InputError when a feed's rank or a fixed dimension differs from the engine's tensor shape (-1 = dynamic)."""
    shape, engine_shape = list(shape), list(engine_shape)
    if len(shape) != len(engine_shape):
        raise InputError(f"input {name}: shape {shape} has rank {len(shape)}, the engine expects "
                         f"rank {len(engine_shape)} {engine_shape}")
    for got, want in zip(shape, engine_shape):
        if want >= 0 and got != want:
            raise InputError(f"input {name}: shape {shape} does not fit the engine's {engine_shape}")


def loop_counts(mode: str, model: str | None, warmup: int | None, runs: int | None) -> tuple[int, int]:
    """(warm-up, runs) for a timing mode; explicit values win over the mode's defaults."""
    if mode not in MODES:
        raise InputError(f"timing mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "contest":
        if (warmup is None or runs is None) and model not in CONTEST_LOOPS:
            raise InputError(f"contest timing needs warmup and runs, or a model of {', '.join(CONTEST_LOOPS)}")
        dw, dr = CONTEST_LOOPS.get(model, (None, None))
    else:
        dw, dr = ROBUST_DEFAULTS
    w = dw if warmup is None else int(warmup)
    r = dr if runs is None else int(runs)
    if w < 0 or r < 1:
        raise InputError(f"warmup {w} must be >= 0 and runs {r} >= 1")
    return w, r


def summarize_ms(samples: Sequence[float], mode: str) -> float:
    """robust: the median of per-run times; contest: the mean."""
    if not samples:
        raise InputError("no timing samples")
    return float(statistics.median(samples)) if mode == "robust" else float(statistics.fmean(samples))


# --- the runner ---------------------------------------------------------------------------
class TrtRunner:
    """One deserialized engine, one execution context (profile 0), device buffers reused across calls."""

    def __init__(self, plan_path: str | Path, plugin_libs: Sequence[str | Path] = ()) -> None:
        from engine.trt_compat import cuda_api, get_logger, import_tensorrt

        self._closed = True
        trt = import_tensorrt()
        self.trt = trt
        self.cuda = cuda_api()
        path = Path(plan_path)
        if not path.is_file():
            raise PlanError(f"engine file {path} does not exist")
        blob = path.read_bytes()
        if not blob:
            raise PlanError(f"engine file {path} is empty")
        from plugins.library import init_builtin_plugins, load_plugin_libraries

        logger = get_logger(trt)
        load_plugin_libraries(plugin_libs)
        init_builtin_plugins(logger)
        logger.sink.clear_errors()
        self.plan_path = path
        self.runtime = trt.Runtime(logger)
        self.engine = self.runtime.deserialize_cuda_engine(blob)
        del blob
        if self.engine is None:
            errors = " | ".join(logger.sink.last_errors(2))
            raise PlanError(f"TensorRT {getattr(trt, '__version__', '?')} cannot load {path}"
                            + (f": {errors}" if errors else "") +
                            " (built by another TensorRT version or GPU, or a plugin library is missing?)")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise PlanError(f"cannot create an execution context for {path} (out of GPU memory?)")
        self.input_names: list[str] = []
        self.output_names: list[str] = []
        self.dtypes: dict[str, np.dtype] = {}
        input_mode = trt.TensorIOMode.INPUT
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            (self.input_names if self.engine.get_tensor_mode(name) == input_mode else self.output_names).append(name)
            self.dtypes[name] = _np_dtype(trt, self.engine.get_tensor_dtype(name))
        for name in self.input_names:
            if hasattr(self.engine, "is_shape_inference_io") and self.engine.is_shape_inference_io(name):
                raise PlanError(f"input {name} is a shape tensor; TrtRunner feeds execution tensors only")
        self.stream = self.cuda.stream_create()
        self._buffers: dict[str, list[int]] = {}      # name -> [device pointer, capacity in bytes]
        self._events: tuple[Any, Any] | None = None
        self._out_shapes: dict[str, tuple[int, ...]] = {}
        self._closed = False

    # --- introspection ---
    def engine_shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self.engine.get_tensor_shape(name))

    def profile_shape(self, name: str) -> tuple[tuple[int, ...], ...]:
        """(min, opt, max) of an input in profile 0."""
        return tuple(tuple(int(d) for d in s) for s in self.engine.get_tensor_profile_shape(name, 0))

    def device_memory_bytes(self) -> int:
        return sum(cap for _, cap in self._buffers.values())

    # --- buffers ---
    def _buffer(self, name: str, nbytes: int) -> int:
        entry = self._buffers.get(name)
        if entry is None or entry[1] < nbytes:
            if entry is not None:
                self.cuda.free(entry[0])
                self._buffers.pop(name)
            # Grow with headroom so a sweep over rising shapes does not reallocate every time.
            cap = max(int(nbytes * 1.25), 256) if entry is not None else max(int(nbytes), 256)
            self._buffers[name] = [self.cuda.malloc(cap), cap]
        return self._buffers[name][0]

    def _prepare(self, feeds: Mapping[str, Any]) -> None:
        """Check and copy the feeds, set shapes and every tensor address; outputs' shapes in _out_shapes."""
        if self._closed:
            raise InferenceError("this TrtRunner is closed")
        check_feed_names(self.input_names, feeds)
        hosts = []
        for name in self.input_names:
            arr = cast_feed(name, feeds[name], self.dtypes[name])
            check_rank(name, arr.shape, self.engine_shape(name))
            if not self.context.set_input_shape(name, tuple(int(d) for d in arr.shape)):
                lo, _, hi = self.profile_shape(name)
                raise InputError(f"input {name}: shape {list(arr.shape)} is outside optimization profile 0 "
                                 f"({list(lo)} .. {list(hi)})")
            ptr = self._buffer(name, arr.nbytes)
            self.cuda.memcpy_htod_async(ptr, arr.ctypes.data, arr.nbytes, self.stream)
            self.context.set_tensor_address(name, ptr)
            hosts.append(arr)
        self._out_shapes = {}
        for name in self.output_names:
            shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise InferenceError(f"output {name} has no static shape ({list(shape)}) after setting the inputs")
            self._out_shapes[name] = shape
            nbytes = int(np.prod(shape, dtype=np.int64)) * self.dtypes[name].itemsize
            self.context.set_tensor_address(name, self._buffer(name, nbytes))
        self.cuda.stream_sync(self.stream)      # host arrays must outlive the copies
        del hosts

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self.cuda.handle(self.stream)):
            from engine.trt_compat import get_logger
            errors = " | ".join(get_logger(self.trt).sink.last_errors(2))
            raise InferenceError("execute_async_v3 returned False" + (f": {errors}" if errors else ""))

    # --- public API ---
    def infer(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run once; outputs as numpy arrays in the engine's dtypes."""
        self._prepare(feeds)
        self._execute()
        out = {}
        for name in self.output_names:
            host = np.empty(self._out_shapes[name], dtype=self.dtypes[name])
            self.cuda.memcpy_dtoh_async(host.ctypes.data, self._buffers[name][0], host.nbytes, self.stream)
            out[name] = host
        self.cuda.stream_sync(self.stream)
        return out

    def time(self, feeds: Mapping[str, Any], mode: str = "robust", warmup: int | None = None,
             runs: int | None = None, model: str | None = None) -> float:
        """Latency in ms of one execution with these feeds (inputs copied once, outside the timing)."""
        w, r = loop_counts(mode, model, warmup, runs)
        self._prepare(feeds)
        for _ in range(w):
            self._execute()
            self.cuda.stream_sync(self.stream)
        if mode == "contest":
            t0 = _time.time_ns()
            for _ in range(r):
                self._execute()
                self.cuda.stream_sync(self.stream)
            return summarize_ms([(_time.time_ns() - t0) / 1e6 / r], "contest")
        if self._events is None:
            self._events = (self.cuda.event_create(), self.cuda.event_create())
        start, end = self._events
        samples = []
        for _ in range(r):
            self.cuda.event_record(start, self.stream)
            self._execute()
            self.cuda.event_record(end, self.stream)
            self.cuda.event_sync(end)
            samples.append(self.cuda.event_elapsed_ms(start, end))
        return summarize_ms(samples, "robust")

    def close(self) -> None:
        """Free device buffers, events and the stream, then the context and engine. Idempotent."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        errors = []
        for name, (ptr, _) in list(self._buffers.items()):
            try:
                self.cuda.free(ptr)
            except Exception as exc:
                errors.append(exc)
        self._buffers.clear()
        for ev in self._events or ():
            try:
                self.cuda.event_destroy(ev)
            except Exception as exc:
                errors.append(exc)
        self._events = None
        try:
            self.cuda.stream_destroy(self.stream)
        except Exception as exc:
            errors.append(exc)
        # Order matters: the context before the engine before the runtime.
        self.context = None
        self.engine = None
        self.runtime = None

    def __enter__(self) -> "TrtRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _np_dtype(trt: Any, dtype: Any) -> np.dtype:
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
