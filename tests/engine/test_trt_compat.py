"""Version and capability discovery, the builder-config adaptation, the log sink, progress tracking and
cuda-python's checked calls, over tiny local stand-ins for the few tensorrt names each function reads
(the real API end to end: tests/engine/test_gpu_backend.py)."""
from __future__ import annotations

import importlib.util
import io
import types

import pytest

from engine.errors import CudaError, TensorRTMissing
from engine.log_sink import LogSink as _LogSink
from engine.trt_compat import enum_members, host_bytes, parse_version
from engine.cuda_runtime import CudaApi
from engine.build_progress import ElapsedIndicator, PhaseTracker


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_missing_tensorrt_is_one_line_with_a_hint():
    from engine.trt_compat import import_tensorrt
    with pytest.raises(TensorRTMissing) as err:
        import_tensorrt()
    text = str(err.value)
    assert "\n" not in text and "cannot import tensorrt" in text and "python3.10" in text


def test_parse_version():
    assert parse_version("8.6.0") == (8, 6, 0)
    assert parse_version("10.13.0.35") == (10, 13, 0, 35)
    assert parse_version("11.0.0rc1") == (11, 0, 0)
    assert parse_version("") == (0,)


def enum(*names):
    members = {n: i for i, n in enumerate(names)}
    return type("E", (), {"__members__": members, **members})


FLAGS_86 = ("FP16", "INT8", "TF32", "SPARSE_WEIGHTS", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS")
TACTICS = ("CUBLAS", "CUBLAS_LT", "CUDNN", "EDGE_MASK_CONVOLUTIONS", "JIT_CONVOLUTIONS")


def stub_trt(version: str):
    """The names trt_compat.capabilities / network_flags read, as TensorRT 8.6, 10 and 11 spell them."""
    major = int(version.split(".")[0])
    attrs = {"builder_optimization_level": 3, "max_aux_streams": -1, "set_calibration_profile": None,
             "int8_calibrator": None, "set_tactic_sources": None, "set_flag": None}
    if major >= 10:
        attrs["progress_monitor"] = None
    trt = types.SimpleNamespace(
        __version__=version, IBuilderConfig=type("IBuilderConfig", (), attrs),
        BuilderFlag=enum(*(FLAGS_86 if major < 11 else FLAGS_86[2:4])),
        TacticSource=enum(*(TACTICS if major < 11 else TACTICS[3:])), MemoryPoolType=enum("WORKSPACE"),
        NetworkDefinitionCreationFlag=enum("EXPLICIT_BATCH"), ProfilingVerbosity=enum("LAYER_NAMES_ONLY", "DETAILED"),
        PreviewFeature=enum("PROFILE_SHARING_0806"), ICudaEngine=type("E", (), {"create_engine_inspector": None}))
    if major < 11:
        trt.IInt8EntropyCalibrator2 = trt.IInt8MinMaxCalibrator = object
    if major >= 10:
        trt.IProgressMonitor = object
    return trt


def test_capabilities_and_network_flags_of_8_6():
    from engine.trt_compat import capabilities, network_flags
    caps = capabilities(stub_trt("8.6.0"))
    assert caps.version == (8, 6, 0) and "OBEY_PRECISION_CONSTRAINTS" in caps.builder_flags
    assert caps.tactic_sources[:2] == ("CUBLAS", "CUBLAS_LT") and not caps.progress_monitor and caps.inspector
    assert {"builder_optimization_level", "max_aux_streams", "set_calibration_profile"} <= caps.config_attrs
    assert caps.calibrators == {"entropy2", "minmax"} and "DETAILED" in caps.profiling_verbosity
    assert network_flags(stub_trt("8.6.0")) == 1          # EXPLICIT_BATCH is member 0


def test_tensorrt_10_and_11_variants():
    from engine.trt_compat import capabilities, network_flags
    assert network_flags(stub_trt("10.0.1")) == 0 and capabilities(stub_trt("10.0.1")).progress_monitor
    caps = capabilities(stub_trt("11.0.0"))
    assert network_flags(stub_trt("11.0.0")) == 0 and "FP16" not in caps.builder_flags and not caps.calibrators


class StubConfig:
    """The IBuilderConfig calls trt_build.apply_settings makes, recorded; `refuse` names setters that raise."""

    def __init__(self, refuse=()):
        self.calls, self.refuse = [], set(refuse)
        self.builder_optimization_level = self.max_aux_streams = self.profiling_verbosity = None

    def __getattr__(self, name):
        def call(*args):
            if name in self.refuse:
                raise TypeError(f"{name}(): incompatible function arguments")
            self.calls.append((name, *args))
            return 0b11111 if name == "get_tactic_sources" else True
        return call


def test_apply_settings_maps_names_to_the_enums_and_reports_refusals():
    from engine.build_report import BuildReport
    from engine.settings import BuilderSettings
    from engine.trt_build import apply_settings
    trt = stub_trt("8.6.0")
    trt.PreviewFeature = enum("FASTER_DYNAMIC_SHAPES_0805", "PROFILE_SHARING_0806")
    s = BuilderSettings(flags_on=["FP16", "SPARSE_WEIGHTS"], flags_off=["TF32"], tactic_sources=["CUBLAS_LT",
                        "JIT_CONVOLUTIONS"], workspace_bytes=64 << 20, opt_level=1, max_aux_streams=2,
                        detailed_profiling=True, preview_features={"PROFILE_SHARING_0806": True})
    report = BuildReport("p", 0, 0.0, "encoder", "8.6.0", tactic_sources=["CUBLAS_LT", "JIT_CONVOLUTIONS"],
                         workspace_mib=64, preview_features={"PROFILE_SHARING_0806": True})
    config = StubConfig()
    apply_settings(trt, config, s, report)
    assert config.calls == [("set_flag", 0), ("set_flag", 3), ("clear_flag", 2), ("set_tactic_sources", 0b10010),
                            ("set_memory_pool_limit", 0, 64 << 20), ("set_preview_feature", 1, True)]
    assert (config.builder_optimization_level, config.max_aux_streams, config.profiling_verbosity) == (1, 2, 1)
    refused = StubConfig(refuse={"set_memory_pool_limit", "set_preview_feature"})
    apply_settings(trt, refused, s, report)
    assert report.workspace_mib is None and "TensorRT refused it" in report.ignored["workspace_mib"]
    assert report.preview_features == {} and "preview_features.PROFILE_SHARING_0806" in report.ignored
    # cuDNN unusable here: TensorRT's default set minus CUDNN
    drop = BuilderSettings(drop_tactic_sources=["CUDNN"])
    apply_settings(trt, StubConfig(), drop, report)
    assert report.tactic_sources == ["CUBLAS", "CUBLAS_LT", "EDGE_MASK_CONVOLUTIONS", "JIT_CONVOLUTIONS"]


def test_open_timing_cache_starts_empty_on_an_unreadable_or_foreign_cache():
    from engine.trt_build import open_timing_cache
    good = object()

    class Config:
        def __init__(self, accepts):
            self.accepts, self.set = accepts, []

        def create_timing_cache(self, data):
            return good if data in (b"", b"cache") else None

        def set_timing_cache(self, cache, ignore_mismatch):
            self.set.append(cache)
            return self.accepts or len(self.set) > 1
    info = {}
    assert open_timing_cache(Config(True), b"garbage", info) is good and "unreadable" in info["note"]
    info = {}
    assert open_timing_cache(Config(False), b"cache", info) is good and "another device" in info["note"]
    info = {}
    assert open_timing_cache(Config(True), b"cache", info) is good and "note" not in info


def test_progress_monitor_feeds_the_tracker_from_tensorrt_10():
    from engine.build_progress import make_progress_monitor
    assert make_progress_monitor(PhaseTracker(), stub_trt("8.6.0")) is None      # 8.6: no IProgressMonitor
    tracker = PhaseTracker()
    monitor = make_progress_monitor(tracker, stub_trt("10.0.1"))
    monitor.phase_start("Building", None, 2)
    assert monitor.step_complete("Building", 0) is True and tracker.describe() == "Building 1/2"
    monitor.phase_finish("Building")
    assert tracker.describe() == ""


def test_enum_members_and_host_bytes():
    class E:
        __members__ = {"A": 1, "B": 2}
    assert enum_members(E) == {"A": 1, "B": 2}
    assert host_bytes(bytearray(b"ab")) == b"ab" and host_bytes(None) == b"" and host_bytes(b"x") == b"x"


def test_log_sink_file_and_recent_errors(tmp_path, capsys):
    sink = _LogSink()
    with sink.to_file(tmp_path / "b.log"):
        sink.write(3, "info line")
        sink.write(4, "verbose line")
        sink.write(1, "bad thing")
    sink.write(2, "a warning")
    text = (tmp_path / "b.log").read_text()
    assert "[INFO] info line" in text and "verbose" not in text and "[ERROR] bad thing" in text
    err = capsys.readouterr().err
    assert "bad thing" in err and "info line" not in err and "a warning" in err     # no file: warnings echo
    assert sink.last_errors() == ["bad thing"]


def test_phase_tracker_and_indicator():
    tr = PhaseTracker()
    tr.start("Building", None, 3)
    tr.start("Tactics", "Building", 10)
    tr.step("Tactics", 4)
    assert tr.describe() == "Building 0/3 > Tactics 5/10"
    tr.finish("Tactics")
    assert tr.describe() == "Building 0/3"
    out = io.StringIO()
    with ElapsedIndicator("building x", tr, every_s=0.1, stream=out) as ind:
        ind._stop.wait(0.5)
    lines = out.getvalue().splitlines()
    assert 2 <= len(lines) <= 10 and lines[0].startswith("building x: 0 s [Building 0/3]")


class _FakeRt:
    class cudaError_t:
        cudaSuccess = 0
        cudaErrorInvalidValue = 1

    @staticmethod
    def cudaGetErrorName(err):
        return (0, b"cudaErrorInvalidValue")

    @staticmethod
    def cudaGetErrorString(err):
        return (0, b"invalid argument")

    @staticmethod
    def cudaMalloc(n):
        return (1, None) if n > 100 else (0, 4096)


def test_cuda_checked_calls():
    api = CudaApi(_FakeRt, "fake")
    assert api.check((0,)) is None and api.check((0, 5)) == 5 and api.check((0, 1, 2)) == (1, 2)
    assert api.malloc(10) == 4096
    with pytest.raises(CudaError, match=r"cudaMalloc failed: cudaErrorInvalidValue \(invalid argument\)"):
        api.malloc(1000)
    with pytest.raises(CudaError, match="has no cudaNothing"):
        api.call("cudaNothing")
    assert CudaApi.handle(7) == 7
