"""Run an engine by tensor name: TrtRunner(plan, harness).infer(feeds) and .measure(feeds).

Talks to engine.backend only: the backend's Engine (I/O tensors, profiles, a
context per profile) and Device (memory, streams, events, CUDA graphs; the
TensorRT backend's is cuda-python, engine/cuda_runtime.py).

The harness (engine/harness.py) decides how: "contest" runs profile 0 on one
context, synchronously, timed with time_ns (the organisers' loop); "serving"
picks for each input shape the profile that holds it (`choose_profile`: a
fixed-batch profile before a dynamic-batch one, then the least padding), pads
the inputs up to it and trims the outputs back (workload.padding), and replays a
CUDA graph captured per (profile, shape) after one warm enqueue. A graph whose
replay does not reproduce the enqueue's outputs bit for bit, or an engine that
refuses capture, runs plain enqueues instead; `measure` says which.
"""
from __future__ import annotations

import statistics
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engine.errors import CudaError, InferenceError, InputError, PlanError, first_line
from engine.feeds import cast_feed, check_feed_names, check_rank, choose_profile, summarize_ms  # noqa: F401
from engine.harness import HARNESSES, Harness
from engine.plan_file import check_plan_file

Shapes = Mapping[str, tuple[int, ...]]


@dataclass
class Measurement:
    """One timed shape: what ran and how long it took."""
    latency_ms: float
    host_ms: float                 # median host time of one enqueue / graph launch call
    profile: int
    shapes: dict[str, list[int]]   # the (padded) input shapes that ran
    cuda_graph: bool               # True: graph replays were timed
    graph_note: str | None = None  # why no graph (not capturable, replay differs, graphs off)


# --- the runner ---------------------------------------------------------------------------
@dataclass
class _Slot:
    """One execution context on one optimization profile, with buffers sized for its maximum shapes."""
    context: Any
    profile: int
    buffers: dict[str, int] = field(default_factory=dict)          # tensor name -> device pointer
    capacity: dict[str, int] = field(default_factory=dict)         # tensor name -> bytes
    graphs: dict[tuple, Any] = field(default_factory=dict)         # shape key -> cudaGraphExec_t
    no_graph: dict[tuple, str] = field(default_factory=dict)       # shape key -> why not
    shapes: tuple = ()                                             # the input shapes set last


class TrtRunner:
    """One deserialized engine; one execution context per optimization profile it uses."""

    def __init__(self, plan_path: str | Path, plugin_libs: Sequence[str | Path] = (),
                 harness: Harness | None = None, pad=None) -> None:
        from engine.backend import get_backend

        self._closed = True
        self.backend = get_backend()
        self.cuda = self.backend.device()
        self.harness = harness or HARNESSES["contest"]
        self.pad = pad if self.harness.select_profiles else None
        path = check_plan_file(plan_path)
        self.backend.load_plugins(plugin_libs)
        self.plan_path = path
        self.engine = self.backend.load(path.read_bytes(), path)
        self.input_names = [t.name for t in self.engine.tensors if t.is_input]
        self.output_names = [t.name for t in self.engine.tensors if not t.is_input]
        self.dtypes: dict[str, np.dtype] = {t.name: t.dtype for t in self.engine.tensors}
        self._shapes = {t.name: t.shape for t in self.engine.tensors}
        self.profiles: list[dict[str, tuple]] = self.engine.profiles
        self.stream = self.cuda.stream_create()
        self._slots: dict[int, _Slot] = {}
        self._events: tuple[Any, Any] | None = None
        self._out_shapes: dict[str, tuple[int, ...]] = {}
        self._closed = False
        self._slot(0)                      # fail here, not at the first case, if no context can be made

    # --- introspection ---
    def engine_shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def profile_shape(self, name: str, profile: int = 0) -> tuple[tuple[int, ...], ...]:
        """(min, opt, max) of an input in a profile."""
        return self.profiles[profile][name]

    @property
    def num_profiles(self) -> int:
        return len(self.profiles)

    def device_memory_bytes(self) -> int:
        return sum(sum(s.capacity.values()) for s in self._slots.values())

    # --- contexts and buffers ---
    def _slot(self, profile: int) -> _Slot:
        slot = self._slots.get(profile)
        if slot is not None:
            return slot
        context = self.engine.create_context(profile, self.stream)   # PlanError when refused
        slot = _Slot(context=context, profile=profile)
        # Buffers for the profile's largest shapes, allocated once: a captured graph keeps their
        # addresses, so they must never move.
        for name in self.input_names:
            if not context.set_input_shape(name, self.profiles[profile][name][2]):
                raise PlanError(f"{self.plan_path.name}: profile {profile} refuses its own maximum shape of {name}")
        sizes = {name: int(np.prod(self.profiles[profile][name][2], dtype=np.int64)) * self.dtypes[name].itemsize
                 for name in self.input_names}
        for name in self.output_names:
            shape = context.output_shape(name)
            if any(d < 0 for d in shape):
                raise PlanError(f"output {name} has no static shape ({list(shape)}) at profile {profile}'s maximum")
            sizes[name] = int(np.prod(shape, dtype=np.int64)) * self.dtypes[name].itemsize
        for name, nbytes in sizes.items():
            slot.buffers[name] = self.cuda.malloc(max(nbytes, 256))
            slot.capacity[name] = max(nbytes, 256)
            context.set_address(name, slot.buffers[name])
        self._slots[profile] = slot
        return slot

    def select(self, shapes: Shapes) -> tuple[int, dict[str, tuple[int, ...]]]:
        """(profile, padded shapes) the harness runs these input shapes at; InputError if none holds them."""
        allowed = None if self.harness.select_profiles else [0]
        choice = choose_profile(self.profiles, shapes, self.pad, allowed)
        if choice is None:
            name = next(iter(shapes))
            lo, _, hi = self.profiles[0][name]
            where = "any optimization profile" if self.harness.select_profiles else "optimization profile 0"
            raise InputError(f"input {name}: shape {list(shapes[name])} is outside {where} "
                             f"(profile 0: {list(lo)} .. {list(hi)}; {self.num_profiles} profile(s))")
        return choice

    def _prepare(self, feeds: Mapping[str, Any]) -> tuple[_Slot, dict[str, tuple[int, ...]]]:
        """Check, pad and copy the feeds into the chosen profile's buffers and set its shapes.
        Returns the slot and the true (unpadded) input shapes."""
        if self._closed:
            raise InferenceError("this TrtRunner is closed")
        check_feed_names(self.input_names, feeds)
        arrays = {}
        for name in self.input_names:
            arr = cast_feed(name, feeds[name], self.dtypes[name])
            check_rank(name, arr.shape, self.engine_shape(name),
                       self.pad.paddable_axes(name) if self.pad is not None else frozenset())
            arrays[name] = arr
        true_shapes = {n: tuple(int(d) for d in a.shape) for n, a in arrays.items()}
        profile, target = self.select(true_shapes)
        if target != true_shapes:
            from workload.padding import pad_feeds
            arrays = pad_feeds(self.pad, arrays, target)
        slot = self._slot(profile)
        for name in self.input_names:
            arr = arrays[name]
            if not slot.context.set_input_shape(name, tuple(int(d) for d in arr.shape)):
                raise InputError(f"input {name}: TensorRT refused shape {list(arr.shape)} on profile {profile}")
            self.cuda.memcpy_htod_async(slot.buffers[name], arr.ctypes.data, arr.nbytes, self.stream)
        slot.shapes = tuple((n, tuple(arrays[n].shape)) for n in self.input_names)
        self._out_shapes = {}
        for name in self.output_names:
            shape = slot.context.output_shape(name)
            if any(d < 0 for d in shape):
                raise InferenceError(f"output {name} has no static shape ({list(shape)}) after setting the inputs")
            self._out_shapes[name] = shape
        self.cuda.stream_sync(self.stream)      # host arrays must outlive the copies
        return slot, true_shapes

    def _enqueue(self, slot: _Slot) -> None:
        if not slot.context.execute(self.stream):
            errors = " | ".join(self.backend.sink.last_errors(2))
            raise InferenceError("execute_async_v3 returned False" + (f": {errors}" if errors else ""))

    def _outputs(self, slot: _Slot) -> dict[str, np.ndarray]:
        out = {}
        for name in self.output_names:
            host = np.empty(self._out_shapes[name], dtype=self.dtypes[name])
            self.cuda.memcpy_dtoh_async(host.ctypes.data, slot.buffers[name], host.nbytes, self.stream)
            out[name] = host
        self.cuda.stream_sync(self.stream)
        return out

    def _replay_matches(self, slot: _Slot, expected: dict[str, np.ndarray]) -> str | None:
        """None when the graph's outputs equal the enqueue's bit for bit, or differ no more than two
        enqueues differ from each other (kernels with atomics); else why not."""
        got = self._outputs(slot)
        if all(np.array_equal(got[n], expected[n]) for n in expected):
            return None
        self._enqueue(slot)
        again = self._outputs(slot)
        if all(np.array_equal(again[n], expected[n]) for n in expected):
            return "graph replay differs from the enqueue's outputs"
        for n in expected:
            noise = np.max(np.abs(again[n].astype(np.float64) - expected[n].astype(np.float64)))
            diff = np.max(np.abs(got[n].astype(np.float64) - expected[n].astype(np.float64)))
            if diff > 2 * noise:
                return f"graph replay differs from the enqueue's {n} by {diff:.3g} (enqueues differ by {noise:.3g})"
        return None

    def _graph_for(self, slot: _Slot) -> Any | None:
        """The graph replaying one enqueue at the slot's current shapes, captured on first use; None
        when graphs are off or this shape cannot use one (the reason is kept in slot.no_graph)."""
        if not self.harness.cuda_graphs:
            return None
        key = slot.shapes
        if key in slot.graphs:
            return slot.graphs[key]
        if key in slot.no_graph:
            return None
        sink = self.backend.sink
        self._enqueue(slot)                         # warm: TensorRT sets up this shape outside the capture
        expected = self._outputs(slot)
        sink.clear_errors()
        try:
            self.cuda.begin_capture(self.stream)
            ok = bool(slot.context.execute(self.stream))
            graph = self.cuda.end_capture(self.stream)
            if not ok:
                self.cuda.graph_destroy(graph)
                errors = " | ".join(sink.last_errors(1))
                raise CudaError("enqueue refused during capture" + (f": {errors}" if errors else ""))
            exe = self.cuda.graph_instantiate(graph)
            self.cuda.graph_destroy(graph)
        except Exception as exc:   # a graph is an optimisation: any failure means plain enqueues, with the reason
            self.cuda.clear_capture_error(self.stream)
            slot.no_graph[key] = f"not capturable: {type(exc).__name__}: {first_line(exc)}"
            return None
        self.cuda.graph_launch(exe, self.stream)
        mismatch = self._replay_matches(slot, expected)
        if mismatch:
            self.cuda.graph_exec_destroy(exe)
            slot.no_graph[key] = mismatch
            return None
        slot.graphs[key] = exe
        return exe

    def _run(self, slot: _Slot, graph: Any | None) -> None:
        if graph is not None:
            self.cuda.graph_launch(graph, self.stream)
        else:
            self._enqueue(slot)

    # --- public API ---
    def infer(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run once the way the harness runs; outputs as numpy arrays (trimmed back where padded)."""
        slot, true_shapes = self._prepare(feeds)
        self._run(slot, self._graph_for(slot))
        out = self._outputs(slot)
        if self.pad is not None and dict(slot.shapes) != true_shapes:
            from workload.padding import trim_outputs
            out = trim_outputs(self.pad, out, true_shapes)
        return out

    def measure(self, feeds: Mapping[str, Any], warmup: int | None = None, runs: int | None = None) -> Measurement:
        """Latency of one run with these feeds (inputs copied once, outside the timing)."""
        w, r = self.harness.loops(warmup, runs)
        slot, _ = self._prepare(feeds)
        graph = self._graph_for(slot)
        for _ in range(w):
            self._run(slot, graph)
            self.cuda.stream_sync(self.stream)
        host = []
        if self.harness.timing == "contest":
            t0 = _time.time_ns()
            for _ in range(r):
                h0 = _time.perf_counter()
                self._run(slot, graph)
                host.append((_time.perf_counter() - h0) * 1e3)
                self.cuda.stream_sync(self.stream)
            latency = summarize_ms([(_time.time_ns() - t0) / 1e6 / r], "contest")
        else:
            if self._events is None:
                self._events = (self.cuda.event_create(), self.cuda.event_create())
            start, end = self._events
            samples = []
            for _ in range(r):
                self.cuda.event_record(start, self.stream)
                h0 = _time.perf_counter()
                self._run(slot, graph)
                host.append((_time.perf_counter() - h0) * 1e3)
                self.cuda.event_record(end, self.stream)
                self.cuda.event_sync(end)
                samples.append(self.cuda.event_elapsed_ms(start, end))
            latency = summarize_ms(samples, "robust")
        note = slot.no_graph.get(slot.shapes) if self.harness.cuda_graphs else "CUDA graphs off"
        return Measurement(latency, float(statistics.median(host)), slot.profile,
                           {n: list(s) for n, s in slot.shapes}, graph is not None, note)

    def time(self, feeds: Mapping[str, Any], warmup: int | None = None, runs: int | None = None) -> float:
        """measure(...).latency_ms"""
        return self.measure(feeds, warmup, runs).latency_ms

    def close(self) -> None:
        """Free graphs, device buffers, events and the stream, then the contexts and engine. Idempotent."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        for slot in self._slots.values():
            for exe in slot.graphs.values():
                _quietly(self.cuda.graph_exec_destroy, exe)
            for ptr in slot.buffers.values():
                _quietly(self.cuda.free, ptr)
            slot.graphs.clear()
            slot.buffers.clear()
        for ev in self._events or ():
            _quietly(self.cuda.event_destroy, ev)
        self._events = None
        _quietly(self.cuda.stream_destroy, self.stream)
        # Order matters: the contexts before the engine before the runtime.
        for slot in self._slots.values():
            slot.context = None
        self._slots.clear()
        self.engine.close()

    def __enter__(self) -> "TrtRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:
        pass
