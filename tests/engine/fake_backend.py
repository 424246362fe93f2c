"""A test double of engine.backend's Backend: a plan is the ONNX plus what the job asked, runs use onnxruntime.

    fake = install(monkeypatch)   # get_backend() for this test; fake.stats (executions, captured, graph_launches,
                                  # builds), fake.jobs (BuildJobs), fake.capturable, fake.fail_build = "error text"
TensorRT itself is tested on the GPU: tests/engine/test_gpu_backend.py."""
from __future__ import annotations

import contextlib
import ctypes
import json
import time
import types

import numpy as np

from engine.backend_types import BuildOutput, TensorInfo
from engine.errors import BuildError, CudaError
from engine.log_sink import LogSink
from engine.settings import CONFIG_ATTRS, Capabilities

TACTICS = ("CUBLAS", "CUBLAS_LT", "CUDNN", "EDGE_MASK_CONVOLUTIONS", "JIT_CONVOLUTIONS")
PREVIEW_86 = ("FASTER_DYNAMIC_SHAPES_0805", "DISABLE_EXTERNAL_TACTIC_SOURCES_FOR_CORE_0805", "PROFILE_SHARING_0806")
NUMERIC = {"FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS"}
NOT_CAPTURABLE = "The CUDA stream is in capturing mode, but this TRT engine is not stream capturable"
OP_TYPES = {"Conv": "CONVOLUTION", "Sigmoid": "ACTIVATION", "Softmax": "SOFTMAX", "MatMul": "MATRIX_MULTIPLY",
            "ReduceMean": "REDUCE", "Unsqueeze": "SHUFFLE", "Reshape": "SHUFFLE", "Cast": "CAST", "Shape": "SHAPE",
            "Sqrt": "UNARY", "Floor": "UNARY", "LayerNormalization": "NORMALIZATION", "Identity": "IDENTITY"}
ONNX_DT = {1: "FLOAT", 10: "HALF", 6: "INT32", 7: "INT32", 9: "BOOL", 3: "INT8"}
FMT = {"FLOAT": "Row major linear FP32", "HALF": "Row major linear FP16 format", "INT8": "Row major Int8 format",
       "INT32": "Row major linear Int32", "BOOL": "Row major linear BOOL"}


def capabilities_of(version: str) -> Capabilities:
    """What TensorRT 8.6 / 10 / 11 offer, as the real discovery would report it (11: strongly typed only)."""
    major, flags = int(version.split(".")[0]), NUMERIC | {"TF32", "SPARSE_WEIGHTS"}
    return Capabilities(
        version=tuple(int(p) for p in version.split(".")), builder_flags=frozenset(flags - NUMERIC if major >= 11 else flags),
        tactic_sources=TACTICS if major < 11 else TACTICS[3:], memory_pools=frozenset({"WORKSPACE"}),
        config_attrs=frozenset(a for a in CONFIG_ATTRS if major >= 10 or a != "progress_monitor"),
        calibrators=frozenset() if major >= 11 else frozenset({"entropy2", "minmax"}), progress_monitor=major >= 10,
        profiling_verbosity=frozenset({"LAYER_NAMES_ONLY", "DETAILED"}),
        preview_features=frozenset(PREVIEW_86 if major < 10 else PREVIEW_86[2:]))


def split_plan(data: bytes) -> tuple[dict, bytes]:
    """(header, ONNX bytes) of a fake plan; ValueError for anything else."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    assert header["fake_plan"] == 1
    return header, data[8 + n:]


class FakeDevice:
    """Host memory as device memory (the runner's pointer copies behave); a capturing stream records its copies
    and enqueues, a graph launch replays them."""

    def __init__(self, stats: dict) -> None:
        self.stats, self.memory, self.execs = stats, {}, {}

    free = lambda self, ptr: self.memory.pop(ptr) and None                    # noqa: E731
    memcpy_htod_async = memcpy_dtoh_async = lambda self, dst, src, n, stream: self._op(  # noqa: E731
        stream, lambda: ctypes.memmove(dst, src, n))
    _op = lambda self, stream, op: stream.ops.append(op) if stream.capturing else op()  # noqa: E731
    stream_create = lambda self: types.SimpleNamespace(capturing=False, ops=[])  # noqa: E731
    stream_destroy = event_sync = event_destroy = graph_destroy = lambda self, *unused: None
    event_create = lambda self: [0.0]                                          # noqa: E731
    event_record = lambda self, event, stream: event.__setitem__(0, time.perf_counter())  # noqa: E731
    event_elapsed_ms = lambda self, start, end: max((end[0] - start[0]) * 1e3, 1e-6)   # noqa: E731
    begin_capture = lambda self, stream: stream.__dict__.update(capturing=True, ops=[])  # noqa: E731
    graph_exec_destroy = lambda self, exe: self.execs.pop(id(exe), None) and None   # noqa: E731
    clear_capture_error = lambda self, stream: setattr(stream, "capturing", False)   # noqa: E731
    self_test = lambda self: "fake device"                                     # noqa: E731

    def malloc(self, nbytes):
        buf = ctypes.create_string_buffer(max(int(nbytes), 1))
        self.memory[ctypes.addressof(buf)] = buf
        return ctypes.addressof(buf)

    def stream_sync(self, stream):
        if stream.capturing:
            raise CudaError("cudaStreamSynchronize failed: cudaErrorStreamCaptureUnsupported")

    def end_capture(self, stream):
        stream.capturing = False
        return list(stream.ops)

    def graph_instantiate(self, graph):
        exe = tuple(graph)
        self.execs[id(exe)] = exe
        return exe

    def graph_launch(self, graph_exec, stream):
        self.stats["graph_launches"] += 1
        for op in graph_exec:
            op()


class FakeContext:
    def __init__(self, engine, profile: int) -> None:
        self.engine, self.profile, self.shapes, self.ptrs, self.profiler = engine, profile, {}, {}, None

    def set_input_shape(self, name, shape):
        lo, _, hi = self.engine.profiles[self.profile][name]
        if ok := len(shape) == len(lo) and all(a <= d <= b for a, d, b in zip(lo, shape, hi)):
            self.shapes[name] = tuple(shape)
        return ok

    def _feeds(self, zeros=False):
        return {t.name: np.zeros(self.shapes[t.name], t.dtype) if zeros else np.frombuffer(ctypes.string_at(
            self.ptrs[t.name], int(np.prod(self.shapes[t.name])) * t.dtype.itemsize), t.dtype).reshape(
            self.shapes[t.name]) for t in self.engine.tensors if t.is_input}

    def output_shape(self, name):
        return tuple(self.engine.session.run([name], self._feeds(zeros=True))[0].shape)

    set_address = lambda self, name, ptr: self.ptrs.__setitem__(name, ptr)     # noqa: E731
    set_profiler = lambda self, report: setattr(self, "profiler", report)      # noqa: E731

    def _run(self):
        e = self.engine
        for o, value in zip(e.session.get_outputs(), e.session.run(None, self._feeds())):
            if "FP16" in e.header["flags"] and value.dtype == np.float32:
                value = value.astype(np.float16).astype(np.float32)
            value = np.ascontiguousarray(value)
            ctypes.memmove(self.ptrs[o.name], value.ctypes.data, value.nbytes)
        for name, _, _ in e.header["layers"] if self.profiler else ():
            self.profiler(name, 0.01)

    def execute(self, stream):
        if stream.capturing and not self.engine.header["capturable"]:
            self.engine.backend.sink.write(1, NOT_CAPTURABLE)
            return False
        self.engine.backend.stats["captured" if stream.capturing else "executions"] += 1
        self.engine.backend.device()._op(stream, self._run)
        return True


class FakeEngine:
    def __init__(self, backend, header: dict, model: bytes) -> None:
        import onnxruntime as ort
        self.backend, self.header = backend, header
        self.session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        self.tensors = [TensorInfo(n, inp, np.dtype(dt), tuple(s)) for n, inp, dt, s in header["io"]]
        self.profiles = [{n: tuple(tuple(s) for s in v) for n, v in p.items()} for p in header["profiles"]]

    create_context = lambda self, profile, stream: FakeContext(self, profile)  # noqa: E731
    close = lambda self: None                                                 # noqa: E731


class FakeBackend:
    def __init__(self, version: str = "8.6.0", caps: Capabilities | None = None) -> None:
        self._version, self.caps = version, caps or capabilities_of(version)
        self.sink, self.jobs, self.capturable, self.fail_build = LogSink(), [], True, None
        self.stats = {"executions": 0, "captured": 0, "graph_launches": 0, "builds": 0}
        self._device = FakeDevice(self.stats)

    version, capabilities, device = (lambda self: self._version), (lambda self: self.caps), (lambda self: self._device)
    gpu_name, plugin_creators = (lambda self: "Fake GPU H100"), (lambda self: [])
    environment = lambda self: {"tensorrt": self._version, "cuda_python": "fake", "gpu": self.gpu_name(),  # noqa
                                "cuda_runtime": 12000, "cuda_driver": 12000}

    def load_plugins(self, libs=()):
        from plugins.library import load_plugin_libraries
        load_plugin_libraries(libs)          # real: a bad plugin file is the same one-line error

    def build(self, job, report):
        import onnx
        from engine.precision import DTYPE_OF, LayerDesc
        from engine.trt_build import check_profile, no_engine_error
        self.jobs.append(job)
        try:
            proto = onnx.shape_inference.infer_shapes(onnx.load(str(job.onnx_path)))
            onnx.checker.check_model(proto)
        except Exception as exc:
            raise BuildError(f"TensorRT cannot parse {job.onnx_path}: {' '.join(str(exc).split())}") from None
        elem = {v.name: ONNX_DT.get(v.type.tensor_type.elem_type, "FLOAT") for v in
                [*proto.graph.value_info, *proto.graph.input, *proto.graph.output]}
        inputs = {v.name: elem[v.name] for v in proto.graph.input}
        dims = {v.name: [d.dim_value or -1 for d in v.type.tensor_type.shape.dim]
                for v in [*proto.graph.input, *proto.graph.output]}
        for shapes in job.profiles:
            check_profile({n: len(dims[n]) for n in inputs}, shapes)
        outputs = {o.name for o in proto.graph.output}
        layers = [LayerDesc(i, n.name, OP_TYPES.get(n.op_type, "ELEMENTWISE"), tuple(elem.get(o, "FLOAT") for o in
                  n.output), (), tuple(o in outputs for o in n.output)) for i, n in enumerate(proto.graph.node)]
        report.network_layers, precisions = len(layers), {}
        if job.precision_plan is not None:
            report.apply_precision_plan(job.precision_plan(layers),
                                        lambda a: precisions.__setitem__(str(a.index), DTYPE_OF[a.precision]))
        if job.calibration is not None:
            np_of = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT8": np.int8, "BOOL": np.bool_}
            data = job.calibration.load({n: np_of[d] for n, d in inputs.items()})
            report.calibration = job.calibration.describe(data)
            cache = job.calibration.cache
            if not report.calibration.setdefault("cache_used", cache.is_file() and cache.stat().st_size > 0):
                cache.write_bytes(b"fake calibration table")
        entries = None
        if job.timing_cache is not None:
            try:
                entries = json.loads(job.timing_cache)["fake_timing_cache"] if job.timing_cache else []
            except ValueError:
                report.timing_cache["note"], entries = "timing cache unreadable (another TensorRT?): started empty", []
            entries.append(f"build-{self.stats['builds']}")
        self.stats["builds"] += 1
        if self.fail_build:
            self.sink.write(1, self.fail_build)
            self.fail_build = None
            raise no_engine_error(job.model, self.sink)     # the real backend's error text
        s = job.settings
        header = {"fake_plan": 1, "flags": s.flags_on, "precisions": precisions, "capturable": self.capturable,
                  "layers": [(la.name, la.type, la.output_dtypes) for la in layers], "profiles": job.profiles,
                  "io": [(n, n in inputs, np.dtype({"INT32": np.int32}.get(elem[n], np.float32)).str, dims[n])
                         for n in [*inputs, *(o.name for o in proto.graph.output)]],
                  "preview": sorted(n for n, on in s.preview_features.items() if on)}
        head = json.dumps(header).encode()
        plan = len(head).to_bytes(8, "little") + head + proto.SerializeToString()
        return BuildOutput(plan, json.dumps({"fake_timing_cache": entries}).encode() if entries is not None else None)

    def merge_timing_caches(self, ours, theirs):
        with contextlib.suppress(ValueError):
            return json.dumps({"fake_timing_cache": json.loads(ours)["fake_timing_cache"]
                               + json.loads(theirs)["fake_timing_cache"]}).encode()

    def deserialize_cuda_engine(self, blob):          # the runtime engine.trt_backend.deserialize calls
        try:
            return FakeEngine(self, *split_plan(blob))
        except Exception:
            self.sink.write(1, "1: Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match")
            return None

    def load(self, plan, path):
        from engine.trt_backend import deserialize
        return deserialize(types.SimpleNamespace(__version__=self._version), self, self, plan, path)

    def inspect(self, plan, path):
        h = self.load(plan, path).header
        prec = {str(i): h["precisions"].get(str(i), "HALF" if "FP16" in h["flags"] else "FLOAT")
                for i in range(len(h["layers"]))}
        layers = [{"Name": name, "LayerType": ltype.title(), "Inputs": [], "Outputs": [
            {"Name": f"{name}_out{j}", "Format/Datatype": FMT[prec[str(i)] if d in ("FLOAT", "HALF") else d]}
            for j, d in enumerate(outs)]} for i, (name, ltype, outs) in enumerate(h["layers"])]
        return {"Layers": layers, "Bindings": [io[0] for io in h["io"]]}


def install(monkeypatch, version: str = "8.6.0", **kw) -> FakeBackend:
    """A FakeBackend as this test's engine.backend.get_backend()."""
    import engine.backend as eb
    monkeypatch.setattr(eb, "_BACKEND", FakeBackend(version, **kw))
    return eb._BACKEND
