"""bench/eval_rows.py: evaluate.py JSONs of one run -> rows in the results convention (own workload)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT / "bench" / "results" / "own-workload-eval-h200.json"      # a real evaluate.py record
SPEC = ROOT / "examples" / "tinycnn" / "tinycnn.yaml"
KEYS = {"model", "label", "harness", "layout", "precision", "cuda_graph", "bs", "sl", "latency_ms", "good",
        "a0", "r0", "a1", "r1", "build_s"}


def run(*args):
    return subprocess.run([sys.executable, str(ROOT / "bench" / "eval_rows.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def test_two_runs_become_one_rows_file(tmp_path):
    from workload import registry
    from engine.config import BuildConfig

    registry.resolve(SPEC)
    try:
        BuildConfig(model="tinycnn", fp16=True, layer_precision={}).save(tmp_path / "tuned.yaml")
    finally:
        registry.unregister("tinycnn")
    out = tmp_path / "rows.json"
    p = run("--workload", SPEC, "--out", out, "--run", "baseline", EVAL, "baseline",
            "--run", "tuned", EVAL, tmp_path / "tuned.yaml")
    assert p.returncode == 0, p.stderr
    rec = json.loads(out.read_text())
    cases = json.loads(EVAL.read_text())["models"]["tinycnn"]["cases"]
    assert rec["gpu"] == "NVIDIA H200" and rec["tensorrt"] == "8.6.0" and "eval_rows.py" in rec["command"]
    assert len(rec["rows"]) == 2 * len(cases) and all(KEYS <= set(r) for r in rec["rows"])
    by_label = {r["label"]: r for r in rec["rows"]}
    assert by_label["baseline"]["precision"] == "fp32" and by_label["tuned"]["precision"] == "fp16"
    first = rec["rows"][0]
    assert (first["bs"], first["sl"], first["latency_ms"]) == (cases[0]["batch"], cases[0]["length"],
                                                               cases[0]["latency_ms"])


def test_runs_of_another_gpu_or_a_missing_file_are_one_line_errors(tmp_path):
    other = json.loads(EVAL.read_text())
    other["gpu"] = "NVIDIA H100"
    (tmp_path / "h100.json").write_text(json.dumps(other))
    p = run("--workload", SPEC, "--out", tmp_path / "o.json", "--run", "a", EVAL, "baseline",
            "--run", "b", tmp_path / "h100.json", "baseline")
    assert p.returncode == 2 and "not one run" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = run("--out", tmp_path / "o.json", "--run", "a", tmp_path / "missing.json", "baseline")
    assert p.returncode == 2 and "missing.json" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "o.json").exists()
