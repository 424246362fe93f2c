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


def test_past_the_deadline_only_a_compiled_graph_runs():
    """A dynamic variant makes one graph per model and batch-is-1 (its further shapes only record a CUDA
    graph); a static one, one per shape: specialisation() says which shapes share one."""
    spec = torch_baselines.specialisation
    assert spec("compile-ma-fp16-dyn", "encoder", 4, 64) == spec("compile-ma-fp16-dyn", "encoder", 16, 1024)
    assert spec("compile-ma-fp16-dyn", "encoder", 1, 64) == spec("compile-ma-fp16-dyn", "encoder", 1, 1024)
    assert spec("compile-ma-fp16-dyn", "encoder", 1, 64) != spec("compile-ma-fp16-dyn", "encoder", 4, 64)
    assert spec("compile-ma-fp16-dyn", "encoder", 4, 64) != spec("compile-ma-fp16-dyn", "decoder", 4, 64)
    assert spec("compile-ma-fp16-dyn", "encoder", 4, 64) != spec("compile-ro-fp16-dyn", "encoder", 4, 64)
    assert spec("compile-ma-fp16", "encoder", 4, 64) != spec("compile-ma-fp16", "encoder", 16, 64)


def test_the_deadline_stops_new_compiles_only(tmp_path, monkeypatch):
    """torch.compile faked (a clock that a first call per graph moves 100 s): with a 50 s deadline the
    batch-1 graph compiles, 1x64 still runs on it, and batch 4 (a new graph) is skipped as past the deadline."""
    torch = pytest.importorskip("torch")
    import types

    data = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "workload", "data", "--out", str(data), "--config", "tiny",
                    "--grid", "1x16,4x16,1x64", "--no-calibration"], cwd=ROOT, check=True, capture_output=True,
                   timeout=600)
    now = [0.0]
    clock = types.SimpleNamespace(monotonic=lambda: now[0], perf_counter=__import__("time").perf_counter)
    monkeypatch.setattr(torch_baselines, "time", clock)

    def fake_compile(fn, mode=None, dynamic=False):
        seen = set()

        def run(*feeds):
            key = feeds[0].shape[0] == 1
            if key not in seen:
                seen.add(key)
                now[0] += 100.0            # a compile
            return fn(*feeds)
        return run

    monkeypatch.setattr(torch, "compile", fake_compile)
    out = tmp_path / "torch.json"
    assert torch_baselines.main(["--device", "cpu", "--data", str(data), "--out", str(out), "--models", "decoder",
                                 "--grid", "1x16,4x16,1x64", "--variants", "compile-ma-fp16-dyn", "--config", "tiny",
                                 "--runs", "1", "--warmup", "0", "--compile-deadline-s", "50"]) == 0
    rows = {(r["bs"], r["sl"]): r for r in json.loads(out.read_text())["rows"]}
    assert rows[(1, 16)].get("latency_ms") is not None and rows[(1, 64)].get("latency_ms") is not None
    assert rows[(4, 16)]["error"] == "skipped: compile deadline 50 s passed"


def test_merge_keeps_every_model_s_rows_and_is_finished_only_if_every_run_is(tmp_path):
    enc = {"kind": "torch-baselines", "gpu": "H200", "rows": [{"model": "encoder", "bs": 1}], "finished": True,
           "settings": {"models": "encoder"}, "command": "python3 bench/torch_baselines.py --models encoder"}
    dec = {"kind": "torch-baselines", "gpu": "H200", "rows": [{"model": "decoder", "bs": 1}], "finished": False,
           "settings": {"models": "decoder"}, "note": "barrier never appeared"}
    paths = []
    for name, rec in (("e.json", enc), ("d.json", dec)):
        (tmp_path / name).write_text(json.dumps(rec))
        paths.append(str(tmp_path / name))
    out = tmp_path / "merged.json"
    assert torch_baselines.main(["--merge", *paths, "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert [r["model"] for r in merged["rows"]] == ["encoder", "decoder"]
    assert merged["finished"] is False and merged["note"] == "barrier never appeared"
    assert merged["kind"] == "torch-baselines" and len(merged["settings"]) == 2
    assert merged["command"] == "python3 bench/torch_baselines.py --models encoder"   # the one run that names its own
    (tmp_path / "d.json").write_text(json.dumps({**dec, "finished": True}))
    torch_baselines.main(["--merge", *paths, "--out", str(out)])
    assert json.loads(out.read_text())["finished"] is True


def test_merge_of_a_missing_file_is_one_error_and_exit_2(tmp_path, capsys):
    assert torch_baselines.main(["--merge", str(tmp_path / "none.json"), "--out", str(tmp_path / "o.json")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
