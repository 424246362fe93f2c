"""bench/ scripts: the GPU slug, the TensorRT baseline run on the fake TensorRT, the torch baselines on CPU."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE_TESTS = ROOT / "tests" / "engine"
if str(ENGINE_TESTS) not in sys.path:
    sys.path.insert(0, str(ENGINE_TESTS))


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name,slug", [("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA H200", "h200"),
                                       ("NVIDIA A30", "a30"), ("Tesla T4", "t4"), ("NVIDIA L40S", "l40s"),
                                       ("NVIDIA GeForce RTX 4090", "rtx-4090"), ("", "unknown")])
def test_gpu_slug(name, slug):
    assert load("bench_common").gpu_slug(name) == slug


def test_tensorrt_baseline_on_the_fake(monkeypatch, tmp_path, capsys):
    import fake_trt as ft
    import onnx

    from engine.probe import tiny_encoder_model, write_cases

    ft.install(monkeypatch)
    work, out = tmp_path / "work", tmp_path / "out"
    (work / "onnx").mkdir(parents=True)
    onnx.save(tiny_encoder_model(), str(work / "onnx" / "encoder.onnx"))
    write_cases(work / "data", work / "onnx" / "encoder.onnx")
    out.mkdir()
    (out / "torch-baselines.json").write_text(json.dumps({"kind": "torch-baselines", "rows": []}))
    rc = load("baseline").main(["--work", str(work), "--out", str(out), "--models", "encoder,decoder",
                                "--modes", "robust", "--runs", "2", "--warmup", "0"])
    # a second run (e.g. after a command time limit) adds its mode to the same file, reusing the plan
    assert load("baseline").main(["--work", str(work), "--out", str(out), "--models", "encoder", "--modes",
                                  "contest", "--skip-build"]) == 0
    result = json.loads((out / "baseline-h100.json").read_text())
    assert rc == 1                                   # the decoder has no ONNX here: recorded, not fatal
    assert "does not exist" in result["models"]["decoder"]["error"]
    enc = result["models"]["encoder"]
    assert enc["build"]["flags_cleared"] == ["TF32"] and Path(enc["plan"]).is_file()
    for mode in ("robust", "contest"):
        assert [(c["batch"], c["length"], c["good"]) for c in enc["modes"][mode]["cases"]] == [(1, 16, True),
                                                                                            (4, 64, True)]
        assert enc["modes"][mode]["good_cases"] == 2
    assert result["gpu"] == "Fake GPU H100" and result["tensorrt"] == "8.6.0" and result["finished"]
    assert result["torch_baselines"]["kind"] == "torch-baselines" and result["command"]


def test_torch_baselines_on_cpu(tmp_path):
    pytest.importorskip("torch")
    from workload.data import generate
    from workload.model_config import ModelConfig

    generate(tmp_path / "data", grid=[(1, 16)], config=ModelConfig.tiny(), calibration=False, progress=False)
    out = tmp_path / "torch.json"
    rc = load("torch_baselines").main(["--data", str(tmp_path / "data"), "--out", str(out), "--config", "tiny",
                                       "--device", "cpu", "--variants", "eager-fp32", "--runs", "2", "--warmup", "0"])
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["model"], r["variant"], r["batch"], r["length"], r["good"]) for r in rows] == [
        ("encoder", "eager-fp32", 1, 16, True), ("decoder", "eager-fp32", 1, 16, True)]
    assert all(r["a0"] == 0.0 for r in rows)          # same weights, same device, same arithmetic
