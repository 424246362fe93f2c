"""Version and capability discovery, the log sink, progress tracking and cuda-python's checked calls."""
from __future__ import annotations

import importlib.util
import io

import pytest

from engine.errors import CudaError, TensorRTMissing
from engine.trt_compat import _LogSink, enum_members, host_bytes, parse_version
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


def test_capabilities_and_network_flags_from_the_fake(fake_trt):
    from engine.trt_compat import capabilities, network_flags
    caps = capabilities()
    assert caps.version == (8, 6, 0) and "OBEY_PRECISION_CONSTRAINTS" in caps.builder_flags
    assert caps.tactic_sources[:2] == ("CUBLAS", "CUBLAS_LT") and not caps.progress_monitor
    assert {"builder_optimization_level", "max_aux_streams", "set_calibration_profile"} <= caps.config_attrs
    assert network_flags() == 1          # EXPLICIT_BATCH is member 0


def test_tensorrt_10_and_11_variants(monkeypatch):
    import fake_trt as ft
    from engine.trt_compat import capabilities, network_flags
    ft.install(monkeypatch, "10.0.1")
    assert network_flags() == 0 and capabilities().progress_monitor
    ft.install(monkeypatch, "11.0.0")
    caps = capabilities()
    assert network_flags() == 0 and "FP16" not in caps.builder_flags and not caps.calibrators


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
