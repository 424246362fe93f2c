"""engine/ test fixtures: the strict fake TensorRT / cuda-python (fake_trt.py) and the probe's tiny ONNX."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture
def fake_trt(monkeypatch):
    """Fake `tensorrt` 8.6 and `cuda.bindings.runtime` in sys.modules for one test: (trt, cudart)."""
    import fake_trt as ft
    return ft.install(monkeypatch, "8.6.0")


@pytest.fixture
def tiny_onnx(tmp_path) -> Path:
    import onnx

    from engine.tiny_model import tiny_encoder_model
    path = tmp_path / "tiny_encoder.onnx"
    onnx.save(tiny_encoder_model(), str(path))
    return path
