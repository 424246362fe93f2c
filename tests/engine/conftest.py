"""engine/ test fixtures: the backend test double (fake_backend.py) and the probe's tiny ONNX."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture
def fake(monkeypatch):
    """A FakeBackend (TensorRT 8.6's capabilities) as engine.backend.get_backend() for one test."""
    import fake_backend
    return fake_backend.install(monkeypatch, "8.6.0")


@pytest.fixture
def tiny_onnx(tmp_path) -> Path:
    import onnx

    from engine.tiny_model import tiny_encoder_model
    path = tmp_path / "tiny_encoder.onnx"
    onnx.save(tiny_encoder_model(), str(path))
    return path
