"""bench/torch_baselines.py on the CPU: the variant table, bad input, and eager rows on the tiny model.

torch.compile itself is not run here (minutes of C++ codegen on this machine); the GPU host runs it.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import torch_baselines  # noqa: E402


def test_every_compile_variant_is_labelled_torch_compile_and_dynamic_ones_say_so():
    labels = [v.label for v in torch_baselines.VARIANTS.values()]
    assert len(set(labels)) == len(labels)
    for name, v in torch_baselines.VARIANTS.items():
        # the report's "torch.compile" role takes every row whose label starts so (bench.report_data)
        assert v.label.startswith("torch.compile") == (v.mode is not None), name
        assert v.dynamic == name.endswith("-dyn") == v.label.endswith(" dynamic"), name
    assert torch_baselines.VARIANTS["compile-ma-fp16-dyn"][:3] == ("max-autotune", True, True)


def test_an_unknown_variant_is_one_error_and_exit_2(tmp_path, capsys):
    pytest.importorskip("torch")
    code = torch_baselines.main(["--device", "cpu", "--data", str(tmp_path), "--out", str(tmp_path / "t.json"),
                                 "--variants", "eager-fp32,compile-warp-speed"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "compile-warp-speed" in err[0]


def test_eager_rows_on_the_tiny_model(tmp_path):
    pytest.importorskip("torch")
    data = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "workload", "data", "--out", str(data), "--config", "tiny",
                    "--grid", "1x16", "--no-calibration"], cwd=ROOT, check=True, capture_output=True, timeout=600)
    out = tmp_path / "torch.json"
    assert torch_baselines.main(["--device", "cpu", "--data", str(data), "--out", str(out), "--models", "decoder",
                                 "--grid", "1x16", "--variants", "eager-fp32", "--config", "tiny",
                                 "--runs", "2", "--warmup", "1"]) == 0
    rec = json.loads(out.read_text())
    (row,) = rec["rows"]
    assert rec["finished"] and rec["kind"] == "torch-baselines"
    assert (row["label"], row["bs"], row["sl"], row["harness"]) == ("torch eager fp32", 1, 16, "torch")
    assert row["good"] is True and row["latency_ms"] > 0 and row["r0"] == 0.0   # the reference's own numerics
