"""A strict stand-in for `tensorrt` (8.6 API, optionally 10 / 11 variants) and cuda-python's runtime.

Only for CPU tests of engine/ and evaluate.py: the call sequence, argument arity
and types follow TensorRT's pybind11 bindings (python/src/infer/pyCore.cpp,
pyGraph.cpp, pyInt8.cpp, parsers/pyOnnx.cpp of NVIDIA/TensorRT v8.6.0), and
misuse raises like the real bindings would (TypeError for a wrong argument
type or count, AttributeError for an unknown attribute, even when setting).

"Engines" are the ONNX model plus the build settings; execution runs the model in
onnxruntime on the fake device memory (real host memory, so pointer arithmetic
and memmove behave), rounding float outputs through float16 when FP16 was on.
The inspector emits TensorRT 8.6's JSON layout with "Format/Datatype" strings
that follow the layer precisions.
"""
from __future__ import annotations

import ctypes
import itertools
import json
import time
import types
import weakref
from typing import Any

import numpy as np


# --- enums (pybind11 py::enum_ behaviour: .name, int(), ==, hashable, __members__) ---------
class _EnumValue:
    __slots__ = ("_enum", "name", "value")

    def __init__(self, enum: str, name: str, value: int) -> None:
        self._enum, self.name, self.value = enum, name, value

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _EnumValue) and other._enum == self._enum and other.value == self.value

    def __hash__(self) -> int:
        return hash((self._enum, self.value))

    def __repr__(self) -> str:
        return f"<{self._enum}.{self.name}: {self.value}>"

    __str__ = lambda self: f"{self._enum}.{self.name}"  # noqa: E731


def _enum(name: str, members: list[str]) -> type:
    values = {m: _EnumValue(name, m, i) for i, m in enumerate(members)}
    cls = type(name, (), dict(values))
    cls.__members__ = dict(values)
    return cls


def _is(value: Any, enum: type) -> bool:
    return isinstance(value, _EnumValue) and value._enum == enum.__name__


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise TypeError(msg)


class _Strict:
    """No new attributes: setting an unknown one raises AttributeError, as on pybind11 objects."""
    _fields: tuple[str, ...] = ()

    def __setattr__(self, key: str, value: Any) -> None:
        if key.startswith("_") or key in self._fields or isinstance(getattr(type(self), key, None), property):
            object.__setattr__(self, key, value)
        else:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{key}'")


FLAGS_86 = ["FP16", "INT8", "DEBUG", "GPU_FALLBACK", "STRICT_TYPES", "REFIT", "DISABLE_TIMING_CACHE", "TF32",
            "SPARSE_WEIGHTS", "SAFETY_SCOPE", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS",
            "DIRECT_IO", "REJECT_EMPTY_ALGORITHMS", "ENABLE_TACTIC_HEURISTIC", "VERSION_COMPATIBLE",
            "EXCLUDE_LEAN_RUNTIME", "FP8"]
FLAGS_11 = ["DEBUG", "GPU_FALLBACK", "REFIT", "DISABLE_TIMING_CACHE", "EDITABLE_TIMING_CACHE", "TF32",
            "SPARSE_WEIGHTS", "SAFETY_SCOPE", "DIRECT_IO", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"]
TACTICS = ["CUBLAS", "CUBLAS_LT", "CUDNN", "EDGE_MASK_CONVOLUTIONS", "JIT_CONVOLUTIONS"]
LAYER_TYPES = ["CONVOLUTION", "ACTIVATION", "SOFTMAX", "ELEMENTWISE", "UNARY", "SHUFFLE", "REDUCE",
               "MATRIX_MULTIPLY", "CONSTANT", "IDENTITY", "CAST", "SHAPE", "PLUGIN_V2", "NORMALIZATION"]
_OP_TYPES = {"Conv": "CONVOLUTION", "Sigmoid": "ACTIVATION", "Softmax": "SOFTMAX", "MatMul": "MATRIX_MULTIPLY",
             "ReduceMean": "REDUCE", "Unsqueeze": "SHUFFLE", "Reshape": "SHUFFLE", "Cast": "CAST", "Shape": "SHAPE",
             "Sqrt": "UNARY", "Floor": "UNARY", "LayerNormalization": "NORMALIZATION", "Identity": "IDENTITY"}
_ONNX_DT = {1: "FLOAT", 10: "HALF", 6: "INT32", 7: "INT32", 9: "BOOL", 3: "INT8"}
# trt.PreviewFeature (NvInfer.h of 8.6.0: enum class PreviewFeature) and which are on by default.
PREVIEW_86 = ["FASTER_DYNAMIC_SHAPES_0805", "DISABLE_EXTERNAL_TACTIC_SOURCES_FOR_CORE_0805", "PROFILE_SHARING_0806"]
PREVIEW_10 = ["PROFILE_SHARING_0806"]                      # deprecated in 10: profiles are always shareable
PREVIEW_ON_86 = {"FASTER_DYNAMIC_SHAPES_0805", "DISABLE_EXTERNAL_TACTIC_SOURCES_FOR_CORE_0805"}
NOT_CAPTURABLE = "The CUDA stream is in capturing mode, but this TRT engine is not stream capturable"
_FMT = {"FLOAT": "Row major linear FP32", "HALF": "Row major linear FP16 format", "INT8": "Row major Int8 format",
        "INT32": "Row major linear Int32", "BOOL": "Row major linear BOOL"}


def split_plan(data: bytes) -> tuple[dict, bytes]:
    """(header, ONNX bytes) of a fake plan; tests read what the build stored (profiles, preview, capturable)."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    if header.get("fake_plan") != 1:
        raise ValueError("not a fake plan")
    return header, data[8 + n:]


def make_tensorrt(version: str = "8.6.0") -> types.ModuleType:
    """A fake `tensorrt` module; '10.x' adds IProgressMonitor, '11.x' drops FP16/INT8/constraints/calibrators.

    Test switches: `trt._capturable = False` before a build makes that engine refuse CUDA-graph
    capture (execute_async_v3 on a capturing stream logs NOT_CAPTURABLE and returns False).
    `trt._stats`: executions (enqueues run now), captured (enqueues recorded into a graph),
    graph_launches (cudaGraphLaunch calls, counted by the fake cudart after `install`), builds.
    """
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt._stats = {"executions": 0, "captured": 0, "graph_launches": 0, "builds": 0}
    trt._capturable = True
    BuilderFlag = _enum("BuilderFlag", FLAGS_11 if major >= 11 else FLAGS_86)
    DataType = _enum("DataType", ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8", "FP8"])
    LayerType = _enum("LayerType", LAYER_TYPES)
    TensorIOMode = _enum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"])
    MemoryPoolType = _enum("MemoryPoolType", ["WORKSPACE", "DLA_MANAGED_SRAM", "DLA_LOCAL_DRAM",
                                              "DLA_GLOBAL_DRAM", "TACTIC_DRAM"])
    TacticSource = _enum("TacticSource", TACTICS if major < 11 else TACTICS[3:])
    ProfilingVerbosity = _enum("ProfilingVerbosity", ["LAYER_NAMES_ONLY", "DETAILED", "NONE", "DEFAULT", "VERBOSE"])
    LayerInformationFormat = _enum("LayerInformationFormat", ["ONELINE", "JSON"])
    Severity = _enum("Severity", ["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"])
    NetworkDefinitionCreationFlag = _enum(
        "NetworkDefinitionCreationFlag", ["EXPLICIT_BATCH", "EXPLICIT_PRECISION"] if major < 11 else ["STRONGLY_TYPED"])
    PreviewFeature = _enum("PreviewFeature", PREVIEW_86 if major < 10 else PREVIEW_10)
    for e in (BuilderFlag, DataType, LayerType, TensorIOMode, MemoryPoolType, TacticSource, ProfilingVerbosity,
              LayerInformationFormat, NetworkDefinitionCreationFlag, PreviewFeature):
        setattr(trt, e.__name__, e)
    trt.float32, trt.float16, trt.int8, trt.int32, trt.bool = (DataType.FLOAT, DataType.HALF, DataType.INT8,
                                                               DataType.INT32, DataType.BOOL)
    np_of = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BOOL": np.bool_,
             "UINT8": np.uint8}

    def nptype(dt):
        _need(_is(dt, DataType), f"nptype: {dt!r} is not a DataType")
        if dt.name not in np_of:
            raise TypeError(f"Could not resolve TensorRT datatype to an equivalent numpy datatype. {dt}")
        return np_of[dt.name]
    trt.nptype = nptype

    # --- logger ---
    class ILogger:
        def __init__(self) -> None:
            self._init_called = True

        def log(self, severity, msg):
            raise NotImplementedError
    ILogger.Severity = Severity
    for m, v in Severity.__members__.items():
        setattr(ILogger, m, v)

    class Logger(ILogger):
        def __init__(self, min_severity=Severity.WARNING) -> None:
            super().__init__()
            self.min_severity = min_severity

        def log(self, severity, msg):
            pass
    trt.ILogger, trt.Logger = ILogger, Logger

    def _logger(obj):
        _need(isinstance(obj, ILogger), f"incompatible function arguments: logger {type(obj).__name__}")
        if not getattr(obj, "_init_called", False):
            raise TypeError(f"{type(obj).__name__}.__init__() must be called when overriding __init__")
        return obj

    def _say(logger, severity: str, msg: str) -> None:
        logger.log(getattr(Severity, severity), msg)

    def _usage_error(logger, where: str, condition: str) -> None:
        _say(logger, "ERROR", f"3: [{where}] Error Code 3: API Usage Error (Parameter check failed at: {where}, "
                              f"condition: {condition}. )")

    # --- plugins ---
    class _Creator:
        def __init__(self, name, version):
            self.name, self.plugin_version, self.plugin_namespace = name, version, ""

    class _Registry:
        plugin_creator_list = [_Creator("CustomSkipLayerNormPluginDynamic", "1"),
                               _Creator("CustomQKVToContextPluginDynamic", "1")]
    registry = _Registry()
    trt.get_plugin_registry = lambda: registry

    def init_libnvinfer_plugins(logger, namespace):
        _logger(logger)
        _need(isinstance(namespace, str), "namespace must be str")
        return True
    trt.init_libnvinfer_plugins = init_libnvinfer_plugins

    # --- network ---
    class ITensor(_Strict):
        _fields = ("name", "dtype", "shape", "is_network_input", "is_network_output", "is_shape_tensor")

        def __init__(self, name, dtype, shape, is_input=False, is_output=False):
            self.name, self.dtype, self.shape = name, dtype, tuple(shape)
            self.is_network_input, self.is_network_output, self.is_shape_tensor = is_input, is_output, False

    class ILayer(_Strict):
        _fields = ("name", "type", "_outputs", "_precision", "_out_types")

        def __init__(self, name, ltype, outputs):
            self.name, self.type, self._outputs = name, ltype, outputs
            self._precision, self._out_types = None, {}

        @property
        def num_outputs(self):
            return len(self._outputs)

        def get_output(self, index):
            _need(isinstance(index, int), "index must be int")
            return self._outputs[index] if 0 <= index < len(self._outputs) else None

        @property
        def precision(self):
            return self._precision or DataType.FLOAT

        @precision.setter
        def precision(self, dt):
            _need(_is(dt, DataType), f"precision: {dt!r} is not a DataType")
            self._precision = dt

        @property
        def precision_is_set(self):
            return self._precision is not None

        def set_output_type(self, index, dtype):
            _need(isinstance(index, int) and _is(dtype, DataType), "set_output_type(index: int, dtype: DataType)")
            if not 0 <= index < len(self._outputs):
                raise IndexError("output index out of range")
            self._out_types[index] = dtype

    class INetworkDefinition(_Strict):
        _fields = ("_inputs", "_outputs", "_layers", "_model_bytes", "_parsed")

        def __init__(self):
            self._inputs, self._outputs, self._layers, self._model_bytes, self._parsed = [], [], [], b"", False

        num_layers = property(lambda self: len(self._layers))
        num_inputs = property(lambda self: len(self._inputs))
        num_outputs = property(lambda self: len(self._outputs))
        get_layer = lambda self, index: self._layers[index]     # noqa: E731
        get_input = lambda self, index: self._inputs[index]     # noqa: E731
        get_output = lambda self, index: self._outputs[index]   # noqa: E731

    class _ParserError:
        def __init__(self, desc):
            self._desc = desc

        def desc(self):
            return self._desc

        def __str__(self):
            return f"In node -1 (parseGraph): INVALID_GRAPH: {self._desc}"

    class OnnxParser(_Strict):
        _fields = ("_network", "_errors")

        def __init__(self, network, logger):
            _need(isinstance(network, INetworkDefinition), "OnnxParser(network, logger)")
            _logger(logger)
            self._network, self._errors = network, []

        num_errors = property(lambda self: len(self._errors))

        def get_error(self, index):
            return self._errors[index]

        def parse_from_file(self, model):
            _need(isinstance(model, str), "parse_from_file(model: str)")
            import onnx
            try:
                proto = onnx.load(model)
                onnx.checker.check_model(proto)
                proto = onnx.shape_inference.infer_shapes(proto)
            except Exception as exc:
                self._errors.append(_ParserError(f"cannot parse {model}: {exc}"))
                return False
            net = self._network
            net._model_bytes = proto.SerializeToString()
            elem = {vi.name: vi.type.tensor_type.elem_type for vi in
                    list(proto.graph.value_info) + list(proto.graph.input) + list(proto.graph.output)}

            def dims(vi):
                return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim)
            outputs = {o.name for o in proto.graph.output}
            for vi in proto.graph.input:
                net._inputs.append(ITensor(vi.name, getattr(DataType, _ONNX_DT[vi.type.tensor_type.elem_type]),
                                           dims(vi), is_input=True))
            for init in proto.graph.initializer:
                net._layers.append(ILayer(init.name, LayerType.CONSTANT, [ITensor(init.name, DataType.FLOAT, ())]))
            for node in proto.graph.node:
                if node.op_type not in _OP_TYPES and node.op_type not in ("Add", "Sub", "Mul", "Div", "Pow"):
                    self._errors.append(_ParserError(f"no importer for op {node.op_type}"))
                    return False
                outs = [ITensor(o, getattr(DataType, _ONNX_DT.get(elem.get(o, 1), "FLOAT")), (),
                                is_output=o in outputs) for o in node.output]
                net._layers.append(ILayer(node.name, getattr(LayerType, _OP_TYPES.get(node.op_type, "ELEMENTWISE")),
                                          outs))
            net._outputs = [t for layer in net._layers for t in layer._outputs if t.is_network_output]
            net._parsed = True
            return True

    # --- builder config ---
    class IOptimizationProfile(_Strict):
        _fields = ("shapes",)

        def __init__(self):
            self.shapes = {}

        def set_shape(self, input, min, opt, max):      # noqa: A002 (the binding's names)
            _need(isinstance(input, str), "set_shape(input: str, min, opt, max)")
            lo, mid, hi = (tuple(int(d) for d in s) for s in (min, opt, max))
            if not (len(lo) == len(mid) == len(hi)) or any(a > b or b > c for a, b, c in zip(lo, mid, hi)):
                raise ValueError(f"bad profile shapes {lo} {mid} {hi}")
            self.shapes[input] = (lo, mid, hi)

        def get_shape(self, input):                       # noqa: A002
            return list(self.shapes[input])

    class ITimingCache(_Strict):
        _fields = ("entries",)

        def __init__(self, entries):
            self.entries = set(entries)

        def serialize(self):
            return bytearray(json.dumps({"fake_timing_cache": sorted(self.entries)}).encode())

        def combine(self, input_cache, ignore_mismatch):
            _need(isinstance(input_cache, ITimingCache) and isinstance(ignore_mismatch, bool),
                  "combine(input_cache: ITimingCache, ignore_mismatch: bool)")
            self.entries |= input_cache.entries
            return True

        def reset(self):
            self.entries.clear()
            return True

    class IBuilderConfig(_Strict):
        _fields = ("_flags", "_pools", "_tactics", "_profiles", "_calib_profile", "_calibrator", "_cache",
                   "_opt_level", "_aux", "_verbosity", "_monitor", "_preview")

        def __init__(self):
            self._flags = {BuilderFlag.TF32} if hasattr(BuilderFlag, "TF32") else set()
            on = PREVIEW_ON_86 if major < 10 else set(PREVIEW_10)
            self._preview = {f for f in PreviewFeature.__members__.values() if f.name in on}
            self._pools, self._tactics, self._profiles = {}, (1 << len(TacticSource.__members__)) - 1, []
            self._calib_profile = self._calibrator = self._cache = self._monitor = None
            self._opt_level, self._aux, self._verbosity = 3, -1, ProfilingVerbosity.LAYER_NAMES_ONLY

        def set_flag(self, flag):
            _need(_is(flag, BuilderFlag), f"set_flag(flag: BuilderFlag), got {flag!r}")
            self._flags.add(flag)

        def clear_flag(self, flag):
            _need(_is(flag, BuilderFlag), f"clear_flag(flag: BuilderFlag), got {flag!r}")
            self._flags.discard(flag)

        def get_flag(self, flag):
            _need(_is(flag, BuilderFlag), "get_flag(flag: BuilderFlag)")
            return flag in self._flags

        def set_memory_pool_limit(self, pool, pool_size):
            _need(_is(pool, MemoryPoolType) and isinstance(pool_size, int), "set_memory_pool_limit(pool, pool_size)")
            self._pools[pool] = pool_size

        def get_memory_pool_limit(self, pool):
            return self._pools.get(pool, 1 << 40)

        def set_tactic_sources(self, tactic_sources):
            _need(isinstance(tactic_sources, int) and tactic_sources >= 0, "set_tactic_sources(tactic_sources: int)")
            if tactic_sources >> len(TacticSource.__members__):
                return False
            self._tactics = tactic_sources
            return True

        def get_tactic_sources(self):
            return self._tactics

        def set_preview_feature(self, feature, enable):
            _need(_is(feature, PreviewFeature) and isinstance(enable, bool),
                  f"set_preview_feature(feature: PreviewFeature, enable: bool), got {feature!r}, {enable!r}")
            (self._preview.add if enable else self._preview.discard)(feature)

        def get_preview_feature(self, feature):
            _need(_is(feature, PreviewFeature), "get_preview_feature(feature: PreviewFeature)")
            return feature in self._preview

        def add_optimization_profile(self, profile):
            _need(isinstance(profile, IOptimizationProfile), "add_optimization_profile(profile)")
            self._profiles.append(profile)
            return len(self._profiles) - 1

        def set_calibration_profile(self, profile):
            _need(isinstance(profile, IOptimizationProfile), "set_calibration_profile(profile)")
            self._calib_profile = profile
            return True

        def create_timing_cache(self, serialized_timing_cache):
            data = memoryview(serialized_timing_cache).tobytes()      # TypeError when not a buffer
            if not data:
                return ITimingCache(())
            try:
                return ITimingCache(json.loads(data)["fake_timing_cache"])
            except (ValueError, KeyError):
                return None

        def set_timing_cache(self, cache, ignore_mismatch):
            _need(isinstance(cache, ITimingCache) and isinstance(ignore_mismatch, bool),
                  "set_timing_cache(cache: ITimingCache, ignore_mismatch: bool)")
            self._cache = cache
            return True

        def get_timing_cache(self):
            return self._cache

        @property
        def int8_calibrator(self):
            return self._calibrator

        @int8_calibrator.setter
        def int8_calibrator(self, value):
            _need(value is None or isinstance(value, _CalibratorBase), "int8_calibrator: IInt8Calibrator")
            self._calibrator = value

        @property
        def builder_optimization_level(self):
            return self._opt_level

        @builder_optimization_level.setter
        def builder_optimization_level(self, value):
            _need(isinstance(value, int), "builder_optimization_level: int")
            self._opt_level = value

        @property
        def max_aux_streams(self):
            return self._aux

        @max_aux_streams.setter
        def max_aux_streams(self, value):
            _need(isinstance(value, int), "max_aux_streams: int")
            self._aux = value

        @property
        def profiling_verbosity(self):
            return self._verbosity

        @profiling_verbosity.setter
        def profiling_verbosity(self, value):
            _need(_is(value, ProfilingVerbosity), "profiling_verbosity: ProfilingVerbosity")
            self._verbosity = value

    if major >= 10:
        class IProgressMonitor:
            def __init__(self):
                self._init_called = True
        trt.IProgressMonitor = IProgressMonitor

        def _get_monitor(self):
            return self._monitor

        def _set_monitor(self, value):
            _need(isinstance(value, IProgressMonitor) and getattr(value, "_init_called", False),
                  "progress_monitor: IProgressMonitor (with its __init__ called)")
            self._monitor = value
        IBuilderConfig.progress_monitor = property(_get_monitor, _set_monitor)
    trt.IBuilderConfig = IBuilderConfig

    # --- calibrators ---
    class _CalibratorBase:
        def __init__(self):
            self._init_called = True
    if major < 11:
        trt.IInt8Calibrator = _CalibratorBase
        trt.IInt8EntropyCalibrator2 = type("IInt8EntropyCalibrator2", (_CalibratorBase,), {})
        trt.IInt8MinMaxCalibrator = type("IInt8MinMaxCalibrator", (_CalibratorBase,), {})

    # --- builder ---
    counter = itertools.count(1)

    class Builder(_Strict):
        _fields = ("_logger",)

        def __init__(self, logger):
            self._logger = _logger(logger)

        def create_network(self, flags=0):
            _need(isinstance(flags, int), "create_network(flags: int)")
            if major >= 10 and flags & 1:
                _say(self._logger, "WARNING", "EXPLICIT_BATCH is deprecated")
            if major < 10 and not flags & (1 << int(NetworkDefinitionCreationFlag.EXPLICIT_BATCH)):
                raise ValueError("fake 8.6: the ONNX parser needs an EXPLICIT_BATCH network")
            return INetworkDefinition()

        def create_builder_config(self):
            return IBuilderConfig()

        def create_optimization_profile(self):
            return IOptimizationProfile()

        def build_serialized_network(self, network, config):
            _need(isinstance(network, INetworkDefinition) and isinstance(config, IBuilderConfig),
                  "build_serialized_network(network, config)")
            log = self._logger
            trt._stats["builds"] += 1
            _say(log, "INFO", "fake build starts")
            if not network._parsed:
                _say(log, "ERROR", "network has no layers")
                return None
            if not config._profiles:
                _say(log, "ERROR", "Network has dynamic or shape inputs, but no optimization profile has been defined.")
                return None
            for k, profile in enumerate(config._profiles):
                missing = [t.name for t in network._inputs if t.name not in profile.shapes]
                if missing:
                    _say(log, "ERROR", f"4: [network.cpp::validate::3062] Error Code 4: Internal Error "
                                       f"({missing[0]}: dynamic input is missing dimensions in profile {k}.)")
                    return None
                for t in network._inputs:
                    lo, opt, hi = profile.shapes[t.name]
                    if len(lo) != len(t.shape) or any(d >= 0 and not lo[i] == hi[i] == d
                                                      for i, d in enumerate(t.shape)):
                        _say(log, "ERROR", f"{t.name}: profile {k} {lo}..{hi} does not fit {t.shape}")
                        return None
            int8 = hasattr(BuilderFlag, "INT8") and BuilderFlag.INT8 in config._flags
            calibration_batches = 0
            if int8:
                cal = config._calibrator
                if cal is None or not getattr(cal, "_init_called", False):
                    _say(log, "ERROR", "INT8 without a calibrator")
                    return None
                if config._calib_profile is None:
                    _say(log, "ERROR", "dynamic shapes need a calibration profile")
                    return None
                _need(isinstance(cal.get_batch_size(), int), "get_batch_size must return int")
                cache = cal.read_calibration_cache()
                if cache is None:
                    names = [t.name for t in network._inputs]
                    while True:
                        ptrs = cal.get_batch(names)
                        if not ptrs:
                            break
                        _need(len(ptrs) == len(names) and all(isinstance(p, int) and p in _MEMORY for p in ptrs),
                              "get_batch must return device pointers")
                        calibration_batches += 1
                    cal.write_calibration_cache(memoryview(b"fake calibration table"))
            if config._cache is not None:
                config._cache.entries.add(f"tactic-{next(counter)}")
            precisions = {i: l._precision.name for i, l in enumerate(network._layers) if l._precision is not None}
            header = {"fake_plan": 1,
                      "profiles": [{k: [list(s) for s in v] for k, v in p.shapes.items()} for p in config._profiles],
                      "preview": sorted(f.name for f in config._preview), "capturable": bool(trt._capturable),
                      "flags": sorted(f.name for f in config._flags), "precisions": precisions,
                      "verbosity": config._verbosity.name, "calibration_batches": calibration_batches,
                      "layers": [[l.name, l.type.name, [t.dtype.name for t in l._outputs]] for l in network._layers]}
            head = json.dumps(header).encode()
            return bytearray(len(head).to_bytes(8, "little") + head + network._model_bytes)
    trt.Builder, trt.OnnxParser = Builder, OnnxParser

    # --- runtime ---
    class Runtime(_Strict):
        _fields = ("_logger",)

        def __init__(self, logger):
            self._logger = _logger(logger)

        def deserialize_cuda_engine(self, serialized_engine):
            data = memoryview(serialized_engine).tobytes()
            try:
                header, model = split_plan(data)
            except Exception:
                _say(self._logger, "ERROR", "1: [stdArchiveReader.cpp::StdArchiveReader::32] Error Code 1: Serialization "
                                            "assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match")
                return None
            try:
                return ICudaEngine(header, model, self._logger)
            except Exception:           # a truncated plan: TensorRT reports it and returns None, never raises
                _say(self._logger, "ERROR", "1: [stdArchiveReader.cpp::StdArchiveReader::54] Error Code 1: Serialization "
                                            "assertion sizeRead == static_cast<uint64_t>(mEnd - mCurrent) failed")
                return None
    trt.Runtime = Runtime

    class ICudaEngine(_Strict):
        _fields = ("_header", "_model", "_io", "_logger", "_contexts")

        def __init__(self, header, model_bytes, logger):
            import onnx
            self._header, self._model, self._logger, self._contexts = header, model_bytes, logger, weakref.WeakSet()
            proto = onnx.load_from_string(model_bytes)
            self._io = []
            for vi, mode in [(v, TensorIOMode.INPUT) for v in proto.graph.input] + \
                            [(v, TensorIOMode.OUTPUT) for v in proto.graph.output]:
                dt = getattr(DataType, _ONNX_DT[vi.type.tensor_type.elem_type])
                shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim)
                self._io.append((vi.name, mode, dt, shape))

        num_io_tensors = property(lambda self: len(self._io))
        num_layers = property(lambda self: len(self._header["layers"]))
        num_optimization_profiles = property(lambda self: len(self._header["profiles"]))

        def _find(self, name):
            _need(isinstance(name, str), "name: str")
            for io in self._io:
                if io[0] == name:
                    return io
            raise KeyError(name)

        def _names(self, mode):
            return [n for n, m, _, _ in self._io if m == mode]

        def _sharing(self):
            """Whether contexts may share a profile: on 8.6 only with PreviewFeature.PROFILE_SHARING_0806."""
            return major >= 10 or "PROFILE_SHARING_0806" in self._header["preview"]

        def _in_use(self, index, other):
            return any(c is not other and c._profile == index for c in self._contexts)

        def get_tensor_name(self, index):
            _need(isinstance(index, int), "get_tensor_name(index: int)")
            return self._io[index][0]

        def get_tensor_mode(self, name):
            return self._find(name)[1]

        def get_tensor_dtype(self, name):
            return self._find(name)[2]

        def get_tensor_shape(self, name):
            return self._find(name)[3]

        def is_shape_inference_io(self, name):
            self._find(name)
            return False

        def get_tensor_profile_shape(self, name, profile_index):
            _need(isinstance(name, str) and isinstance(profile_index, int),
                  "get_tensor_profile_shape(name: str, profile_index: int)")
            profiles = self._header["profiles"]
            if not 0 <= profile_index < len(profiles) or name not in profiles[0]:
                _usage_error(self._logger, "engine.cpp::getProfileShape",
                             "profileIndex >= 0 && profileIndex < getNbOptimizationProfiles() && isInput(tensorName)")
                return [(), (), ()]          # three Dims{-1}: no dimensions
            return [tuple(s) for s in profiles[profile_index][name]]

        def create_execution_context(self):
            context = IExecutionContext(self)
            self._contexts.add(context)
            return context

        def create_engine_inspector(self):
            return EngineInspector(self)

    class IExecutionContext(_Strict):
        _fields = ("_engine", "_shapes", "_addr", "_session", "_profile")

        def __init__(self, engine):
            import onnxruntime as ort
            self._engine, self._shapes, self._addr = engine, {}, {}
            self._session = ort.InferenceSession(engine._model, providers=["CPUExecutionProvider"])
            # 8.6 (NvInferRuntime.h, setOptimizationProfileAsync): a new context gets profile 0 only when no
            # live context holds it; otherwise it has none until set_optimization_profile_async.
            self._profile = 0 if engine._sharing() or not engine._in_use(0, self) else -1

        @property
        def active_optimization_profile(self):
            return self._profile

        def set_optimization_profile_async(self, profile_index, stream_handle):
            _need(isinstance(profile_index, int) and isinstance(stream_handle, int),
                  "set_optimization_profile_async(profile_index: int, stream_handle: int)")
            engine = self._engine
            where = "executionContext.cpp::setOptimizationProfileInternal"
            if not 0 <= profile_index < engine.num_optimization_profiles:
                _usage_error(engine._logger, where,
                             "profileIndex >= 0 && profileIndex < mEngine.getNbOptimizationProfiles()")
                raise RuntimeError("Error in set optimization profile async.")      # the binding's PY_ASSERT
            if not engine._sharing() and engine._in_use(profile_index, self):
                _usage_error(engine._logger, where, f"!mEngine.isProfileInUse({profile_index}): the optimization "
                             "profile is used by another execution context (PreviewFeature.PROFILE_SHARING_0806)")
                raise RuntimeError("Error in set optimization profile async.")
            if profile_index != self._profile:
                self._shapes = {}                # input shapes must be set again on the new profile
            self._profile = profile_index
            return True

        def set_input_shape(self, name, shape):
            io = self._engine._find(name)
            _need(io[1] == TensorIOMode.INPUT, f"{name} is not an input")
            shape = tuple(int(d) for d in shape)
            if self._profile < 0:
                _usage_error(self._engine._logger, "executionContext.cpp::setInputShape", "mOptimizationProfile >= 0")
                return False
            lo, _, hi = self._engine._header["profiles"][self._profile][name]
            if len(shape) != len(lo) or any(not a <= s <= b for a, s, b in zip(lo, shape, hi)):
                _usage_error(self._engine._logger, "executionContext.cpp::setInputShape",
                             f"satisfyProfile Runtime dimension does not satisfy any optimization profile ({name})")
                return False
            self._shapes[name] = shape
            return True

        def get_tensor_shape(self, name):
            io = self._engine._find(name)
            if io[1] == TensorIOMode.INPUT:
                return self._shapes.get(name, io[3])
            inputs = self._engine._names(TensorIOMode.INPUT)
            if any(n not in self._shapes for n in inputs):
                return tuple(-1 for _ in io[3])
            zeros = {n: np.zeros(self._shapes[n], dtype=np_of[self._engine._find(n)[2].name]) for n in inputs}
            return tuple(self._session.run([name], zeros)[0].shape)

        def set_tensor_address(self, name, memory):
            _need(isinstance(memory, int), f"set_tensor_address(name: str, memory: int), got {type(memory).__name__}")
            self._engine._find(name)
            self._addr[name] = memory
            return True

        def _compute(self, shapes, addr):
            """One inference on the device buffers at `addr`; False where a buffer is not (big enough) device memory."""
            engine = self._engine
            feeds = {}
            for name in engine._names(TensorIOMode.INPUT):
                arr = np.empty(shapes[name], dtype=np_of[engine._find(name)[2].name])
                if not _inside(addr[name], arr.nbytes):
                    return False
                ctypes.memmove(arr.ctypes.data, addr[name], arr.nbytes)
                feeds[name] = arr
            names = engine._names(TensorIOMode.OUTPUT)
            fp16 = "FP16" in engine._header["flags"]
            for name, value in zip(names, self._session.run(names, feeds)):
                if fp16 and value.dtype == np.float32:
                    value = value.astype(np.float16).astype(np.float32)
                value = np.ascontiguousarray(value)
                if not _inside(addr[name], value.nbytes):
                    return False
                ctypes.memmove(addr[name], value.ctypes.data, value.nbytes)
            return True

        def execute_async_v3(self, stream_handle):
            _need(isinstance(stream_handle, int), f"execute_async_v3(stream_handle: int), got "
                                                  f"{type(stream_handle).__name__}")
            engine, log = self._engine, self._engine._logger
            if self._profile < 0 or any(n not in self._addr for n, _, _, _ in engine._io) \
                    or any(n not in self._shapes for n in engine._names(TensorIOMode.INPUT)):
                _usage_error(log, "executionContext.cpp::enqueueV3",
                             "profile set, all input shapes specified and all tensor addresses set")
                return False
            capture = _CAPTURE.get(stream_handle)
            if capture is not None:              # recorded into the graph, run at each cudaGraphLaunch
                if not engine._header["capturable"]:
                    _say(log, "ERROR", NOT_CAPTURABLE)
                    return False
                if capture["status"] != "active":
                    _say(log, "ERROR", "1: [executionContext.cpp::enqueueV3] Error Code 1: Cuda Runtime "
                                       "(operation failed due to a previous error during capture)")
                    return False
                snapshot = (dict(self._shapes), dict(self._addr))
                capture["ops"].append(lambda: self._compute(*snapshot))
                trt._stats["captured"] += 1
                return True
            trt._stats["executions"] += 1
            if not self._compute(self._shapes, self._addr):
                _say(log, "ERROR", "1: [executionContext.cpp::enqueueV3] Error Code 1: Cuda Runtime "
                                   "(an illegal memory access was encountered)")
                return False
            time.sleep(0.0001)
            return True

    class EngineInspector(_Strict):
        _fields = ("_engine",)

        def __init__(self, engine):
            self._engine = engine

        def get_engine_information(self, format):          # noqa: A002 (the binding's name)
            _need(_is(format, LayerInformationFormat), "get_engine_information(format: LayerInformationFormat)")
            h = self._engine._header
            if h["verbosity"] != "DETAILED":
                return json.dumps({"Layers": [name for name, _, _ in h["layers"]],
                                   "Bindings": [io[0] for io in self._engine._io]})
            default = "HALF" if "FP16" in h["flags"] else "FLOAT"
            layers = []
            for i, (name, ltype, outs) in enumerate(h["layers"]):
                if ltype in ("CONSTANT", "SHAPE"):
                    continue
                prec = h["precisions"].get(str(i), default)
                dts = [prec if d in ("FLOAT", "HALF") else d for d in outs]
                layers.append({"Name": name, "LayerType": ltype.title(), "Inputs": [],
                               "Outputs": [{"Name": f"{name}_out{j}", "Location": "Device", "Dimensions": [-1],
                                            "Format/Datatype": _FMT[d]} for j, d in enumerate(dts)],
                               "TacticValue": "0x0"})
            return json.dumps({"Layers": layers, "Bindings": [io[0] for io in self._engine._io]})

    trt.ICudaEngine, trt.IExecutionContext, trt.TensorIOMode = ICudaEngine, IExecutionContext, TensorIOMode
    return trt


# --- cuda-python runtime -------------------------------------------------------------------------------
_MEMORY: dict[int, Any] = {}       # device pointer -> ctypes buffer (real host memory)
# CUDA graphs. While a stream captures, work submitted to it is recorded as callables (returning
# False on failure) and run at each cudaGraphLaunch; the fake execution context looks its stream
# up here. Reset by make_cudart (stream handles restart with each fake).
_CAPTURE: dict[int, dict] = {}     # capturing stream handle -> {"ops": [...], "status": "active"|"invalidated", "mode"}
_GRAPHS: dict[int, list] = {}      # cudaGraph_t -> recorded ops
_GRAPH_EXECS: dict[int, list] = {} # cudaGraphExec_t -> recorded ops (what close() must destroy)


def _inside(ptr: int, n: int) -> bool:
    """Whether [ptr, ptr + n) lies in one live device allocation."""
    return any(base <= ptr and ptr + n <= base + ctypes.sizeof(buf) for base, buf in _MEMORY.items())


def make_cudart() -> types.ModuleType:
    rt = types.ModuleType("cuda.bindings.runtime")
    rt.cudaError_t = _enum("cudaError_t", ["cudaSuccess", "cudaErrorInvalidValue", "cudaErrorMemoryAllocation",
                                           "cudaErrorInvalidDevice", "cudaErrorInvalidResourceHandle",
                                           "cudaErrorIllegalAddress", "cudaErrorIllegalState",
                                           "cudaErrorStreamCaptureUnsupported", "cudaErrorStreamCaptureInvalidated"])
    rt.cudaMemcpyKind = _enum("cudaMemcpyKind", ["cudaMemcpyHostToHost", "cudaMemcpyHostToDevice",
                                                 "cudaMemcpyDeviceToHost", "cudaMemcpyDeviceToDevice"])
    rt.cudaStreamCaptureMode = _enum("cudaStreamCaptureMode", ["cudaStreamCaptureModeGlobal",
                                                               "cudaStreamCaptureModeThreadLocal",
                                                               "cudaStreamCaptureModeRelaxed"])
    rt.cudaStreamCaptureStatus = _enum("cudaStreamCaptureStatus", ["cudaStreamCaptureStatusNone",
                                                                   "cudaStreamCaptureStatusActive",
                                                                   "cudaStreamCaptureStatusInvalidated"])
    rt._stats = {"graph_launches": 0}      # install() shares trt._stats
    err = rt.cudaError_t
    ok = err.cudaSuccess
    for registry in (_CAPTURE, _GRAPHS, _GRAPH_EXECS):
        registry.clear()
    handles = itertools.count(0x1000)
    streams: set[int] = set()
    events: dict[int, float] = {}

    class _Handle:
        def __init__(self, value):
            self._v = value

        def __int__(self):
            return self._v

        def getPtr(self):
            return self._v

    rt.cudaStream_t = type("cudaStream_t", (_Handle,), {})
    rt.cudaEvent_t = type("cudaEvent_t", (_Handle,), {})
    rt.cudaGraph_t = type("cudaGraph_t", (_Handle,), {})
    rt.cudaGraphExec_t = type("cudaGraphExec_t", (_Handle,), {})

    def _unsafe_during_capture():
        """cudaMalloc / synchronizing a capturing stream: prohibited (and the capture invalidated) unless Relaxed."""
        strict = [c for c in _CAPTURE.values() if c["mode"] != rt.cudaStreamCaptureMode.cudaStreamCaptureModeRelaxed]
        for c in strict:
            c["status"] = "invalidated"
        return bool(strict)

    def cudaMalloc(size):
        _need(isinstance(size, int), "cudaMalloc(size: int)")
        if size <= 0:
            return (rt.cudaError_t.cudaErrorInvalidValue, None)
        if _unsafe_during_capture():
            return (err.cudaErrorStreamCaptureUnsupported, None)
        buf = ctypes.create_string_buffer(size)
        ptr = ctypes.addressof(buf)
        _MEMORY[ptr] = buf
        return (ok, ptr)

    def cudaFree(ptr):
        if ptr not in _MEMORY:
            return (rt.cudaError_t.cudaErrorInvalidValue,)
        del _MEMORY[ptr]
        return (ok,)

    def cudaMemcpyAsync(dst, src, count, kind, stream):
        _need(isinstance(stream, rt.cudaStream_t) and int(stream) in streams, "cudaMemcpyAsync: bad stream")
        _need(_is(kind, rt.cudaMemcpyKind), "cudaMemcpyAsync: kind")
        dev = dst if kind == rt.cudaMemcpyKind.cudaMemcpyHostToDevice else src
        if not _inside(dev, count):
            return (rt.cudaError_t.cudaErrorInvalidValue,)

        def copy():
            if not _inside(dev, count):
                return False
            ctypes.memmove(dst, src, count)
            return True
        capture = _CAPTURE.get(int(stream))
        if capture is not None:
            if capture["status"] != "active":
                return (err.cudaErrorStreamCaptureInvalidated,)
            capture["ops"].append(copy)
            return (ok,)
        copy()
        return (ok,)

    def cudaStreamCreate():
        h = next(handles)
        streams.add(h)
        return (ok, rt.cudaStream_t(h))

    def _stream_ok(s):
        return isinstance(s, rt.cudaStream_t) and int(s) in streams

    def cudaStreamSynchronize(s):
        if not _stream_ok(s):
            return (err.cudaErrorInvalidResourceHandle,)
        if int(s) in _CAPTURE:
            _CAPTURE[int(s)]["status"] = "invalidated"
            return (err.cudaErrorStreamCaptureUnsupported,)
        return (ok,)

    def cudaStreamDestroy(s):
        if not _stream_ok(s):
            return (rt.cudaError_t.cudaErrorInvalidResourceHandle,)
        streams.discard(int(s))
        _CAPTURE.pop(int(s), None)
        return (ok,)

    # --- CUDA graphs (cuda-python 12 signatures) ---
    def cudaStreamBeginCapture(stream, mode):
        _need(_stream_ok(stream) and _is(mode, rt.cudaStreamCaptureMode), "cudaStreamBeginCapture(stream, mode)")
        if int(stream) in _CAPTURE:
            return (err.cudaErrorIllegalState,)
        _CAPTURE[int(stream)] = {"ops": [], "status": "active", "mode": mode}
        return (ok,)

    def cudaStreamEndCapture(stream):
        _need(_stream_ok(stream), "cudaStreamEndCapture(stream)")
        capture = _CAPTURE.pop(int(stream), None)
        if capture is None:
            return (err.cudaErrorIllegalState, None)
        if capture["status"] != "active":
            return (err.cudaErrorStreamCaptureInvalidated, None)
        h = next(handles)
        _GRAPHS[h] = capture["ops"]
        return (ok, rt.cudaGraph_t(h))

    def cudaStreamIsCapturing(stream):
        _need(_stream_ok(stream), "cudaStreamIsCapturing(stream)")
        status = {None: "None", "active": "Active", "invalidated": "Invalidated"}[
            _CAPTURE.get(int(stream), {}).get("status")]
        return (ok, getattr(rt.cudaStreamCaptureStatus, f"cudaStreamCaptureStatus{status}"))

    def cudaGraphInstantiate(graph, flags):
        _need(isinstance(graph, rt.cudaGraph_t) and isinstance(flags, int), "cudaGraphInstantiate(graph, flags: int)")
        if int(graph) not in _GRAPHS:
            return (err.cudaErrorInvalidValue, None)
        h = next(handles)
        _GRAPH_EXECS[h] = list(_GRAPHS[int(graph)])
        return (ok, rt.cudaGraphExec_t(h))

    def cudaGraphLaunch(graph_exec, stream):
        _need(isinstance(graph_exec, rt.cudaGraphExec_t) and _stream_ok(stream), "cudaGraphLaunch(graphExec, stream)")
        ops = _GRAPH_EXECS.get(int(graph_exec))
        if ops is None:
            return (err.cudaErrorInvalidValue,)
        if int(stream) in _CAPTURE:               # a graph launched into a capture becomes a child graph
            _CAPTURE[int(stream)]["ops"].extend(ops)
            return (ok,)
        rt._stats["graph_launches"] += 1
        for op in ops:
            if not op():
                return (err.cudaErrorIllegalAddress,)
        return (ok,)

    def _destroy(registry, kind):
        def destroy(handle):
            _need(isinstance(handle, kind), f"{kind.__name__} expected")
            return (ok,) if registry.pop(int(handle), None) is not None else (err.cudaErrorInvalidValue,)
        return destroy
    rt.cudaGraphDestroy = _destroy(_GRAPHS, rt.cudaGraph_t)
    rt.cudaGraphExecDestroy = _destroy(_GRAPH_EXECS, rt.cudaGraphExec_t)

    def cudaEventCreate():
        h = next(handles)
        events[h] = 0.0
        return (ok, rt.cudaEvent_t(h))

    def cudaEventRecord(event, stream):
        _need(isinstance(event, rt.cudaEvent_t) and _stream_ok(stream), "cudaEventRecord(event, stream)")
        events[int(event)] = time.perf_counter()
        return (ok,)

    rt.cudaEventSynchronize = lambda e: (ok,) if int(e) in events else (rt.cudaError_t.cudaErrorInvalidResourceHandle,)
    rt.cudaEventElapsedTime = lambda a, b: (ok, (events[int(b)] - events[int(a)]) * 1e3)

    def cudaEventDestroy(e):
        events.pop(int(e), None)
        return (ok,)

    class _Props:
        name = b"Fake GPU H100\x00\x00\x00"
        major, minor = 9, 0

    def cudaSetDevice(device):
        return (ok,) if device == 0 else (rt.cudaError_t.cudaErrorInvalidDevice,)

    for fn in (cudaMalloc, cudaFree, cudaMemcpyAsync, cudaStreamCreate, cudaStreamSynchronize, cudaStreamDestroy,
               cudaEventCreate, cudaEventRecord, cudaEventDestroy, cudaSetDevice, cudaStreamBeginCapture,
               cudaStreamEndCapture, cudaStreamIsCapturing, cudaGraphInstantiate, cudaGraphLaunch):
        setattr(rt, fn.__name__, fn)
    rt.cudaGetDevice = lambda: (ok, 0)
    rt.cudaGetLastError = lambda: (ok,)
    rt.cudaGetDeviceProperties = lambda device: (ok, _Props()) if device == 0 else \
        (rt.cudaError_t.cudaErrorInvalidDevice, None)
    rt.cudaGetErrorName = lambda err: (ok, err.name.encode())
    rt.cudaGetErrorString = lambda err: (ok, b"fake error" if err != ok else b"no error")
    rt.cudaRuntimeGetVersion = lambda: (ok, 12010)
    rt.cudaDriverGetVersion = lambda: (ok, 13000)
    return rt


def install(monkeypatch, version: str = "8.6.0"):
    """Put the fakes in sys.modules and reset engine/'s cached logger and CUDA handle."""
    import sys

    import engine.cuda_runtime as cr
    import engine.trt_compat as tc
    import plugins.library as pl

    trt = make_tensorrt(version)
    rt = make_cudart()
    rt._stats = trt._stats                 # graph launches counted beside the executions
    cuda_pkg = types.ModuleType("cuda")
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = rt
    cuda_pkg.bindings = bindings
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "cuda", cuda_pkg)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", rt)
    monkeypatch.setattr(tc, "_LOGGER", None)
    monkeypatch.setattr(cr, "_CUDA", None)
    monkeypatch.setattr(pl, "_TRT_LOGGER", None)
    # A machine with a complete cuDNN (tests of the rig's loader-only cuDNN patch this to False).
    monkeypatch.setattr(tc, "cudnn_loadable", lambda trt=None: True)
    return trt, rt
