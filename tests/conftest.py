"""Shared test setup: the `gpu` marker skips without TensorRT; tiny model fixtures.

The workload fixtures (tiny ONNX exports) are below the marker hook.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _have_tensorrt() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def pytest_collection_modifyitems(config, items):
    if _have_tensorrt():
        return
    skip = pytest.mark.skip(reason="needs TensorRT and a CUDA GPU (run on the GPU host)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# ---- workload fixtures (owned by the workload module) -------------------------
# The tiny WeNet model (workload.model_config.ModelConfig.tiny(), weight seed 0) exported once
# per session; feeds for it: workload.data.make_inputs(model, batch, frames, seed, config=tiny).
# Skipped where torch is missing (the GPU host's TensorRT Python has none).


@pytest.fixture(scope="session")
def tiny_model_config():
    from workload.model_config import ModelConfig
    return ModelConfig.tiny()


@pytest.fixture(scope="session")
def tiny_config(tiny_model_config):
    """Alias of tiny_model_config (the name tests/candidates/wenet_models.py looks up)."""
    return tiny_model_config


def _export_tiny(tmp_path_factory, config, style: str) -> dict[str, Path]:
    pytest.importorskip("torch")
    from workload.export import export_all
    return export_all(tmp_path_factory.mktemp(f"tiny_onnx_{style}"), style, config=config, seed=0)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, tiny_model_config) -> dict[str, Path]:
    """{"encoder": Path, "decoder": Path}: contest style (opset 13, decomposed LayerNorm)."""
    return _export_tiny(tmp_path_factory, tiny_model_config, "contest")


@pytest.fixture(scope="session")
def tiny_onnx_modern(tmp_path_factory, tiny_model_config) -> dict[str, Path]:
    """{"encoder": Path, "decoder": Path}: modern style (opset 17, LayerNormalization)."""
    return _export_tiny(tmp_path_factory, tiny_model_config, "modern")
