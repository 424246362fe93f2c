"""A second workload, end to end on CPU: a small 1-D CNN the test builds and exports itself
(PyTorch -> ONNX in tmp_path), its own spec file, test cases from the generator (onnxruntime
references), `search tune --workload` with the real trial worker over the fake TensorRT
(tests/engine/fake_backend.py: builds and runs the ONNX in onnxruntime), then freeze, the engine
CLI, evaluate.py and build.sh, all through the spec. Nothing WeNet-specific is involved: the
layer groups are the graph's op types, the thresholds, grid and loop the spec's.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from workload import registry

ROOT = Path(__file__).resolve().parents[2]
FAKE_TRT_WORKER = Path(__file__).with_name("fake_backend_worker.py")
ENGINE_TESTS = ROOT / "tests" / "engine"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")   # torch: the TorchScript exporter

EXAMPLE = ROOT / "examples" / "tinycnn"
SPEC = (EXAMPLE / "tinycnn.yaml").read_text()           # the README's example, as committed


def export_tinycnn(path: Path) -> Path:
    pytest.importorskip("torch")
    sys.path.insert(0, str(EXAMPLE))
    try:
        from export_tinycnn import export_tinycnn as export
    finally:
        sys.path.remove(str(EXAMPLE))
    return export(path)


@pytest.fixture
def own(tmp_path, monkeypatch):
    """The spec file beside its exported ONNX and generated cases; the name forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "mine"
    home.mkdir()
    export_tinycnn(home / "tinycnn.onnx")
    spec_path = home / "tinycnn.yaml"
    spec_path.write_text(SPEC)
    yield spec_path
    registry.unregister("tinycnn")


def fake_worker() -> str:
    return shlex.join([sys.executable, str(FAKE_TRT_WORKER)])


def test_tune_your_own_onnx_model_end_to_end(own, tmp_path, monkeypatch, capsys):
    from workload.__main__ import main as workload_main

    # 1. the spec checks out, and the generator writes the cases with onnxruntime references
    assert workload_main(["spec", "--workload", str(own), "--get", "name"]) == 0
    assert capsys.readouterr().out.strip() == "tinycnn"
    assert workload_main(["cases", "--workload", str(own)]) == 0
    cases = own.parent / "cases"
    assert sorted(p.name for p in cases.glob("*.npz")) == [
        "calibration-tinycnn.npz", "tinycnn-1-32.npz", "tinycnn-1-8.npz", "tinycnn-4-32.npz", "tinycnn-4-8.npz"]
    with np.load(cases / "tinycnn-4-32.npz") as z:
        assert z["x"].shape == (4, 8, 32) and z["probs"].shape == (4, 10) and z["features"].shape == (4, 16, 32)
        assert np.allclose(z["probs"].sum(axis=1), 1.0, atol=1e-5)

    # 2. tune it: four trials, the real worker (prepare, build, inspect, evaluate) over the fake TensorRT
    from search.cli import main as search_main
    work = tmp_path / "work"
    argv = ["tune", "--workload", str(own), "--work-dir", str(work), "--trials", "4", "--seed", "0",
            "--runs", "2", "--warmup", "0", "--no-progress", "--worker-command", fake_worker()]
    assert search_main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "tinycnn-serving (serving harness): 4 new trials (4 complete" in out, out

    # 3. the storage: the spec's study, model and op-type layer groups; every case measured and judged
    storage = optuna.storages.RDBStorage(f"sqlite:///{work / 'study.db'}")
    assert optuna.study.get_all_study_names(storage) == ["tinycnn-serving"]
    study = optuna.load_study(study_name="tinycnn-serving", storage=storage)
    assert study.user_attrs["model"] == "tinycnn" and study.user_attrs["harness"] == "serving"
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    # passes_fp32 is the baseline again (no graph pass applies to this model): enqueued once
    assert [t.user_attrs["seed"] for t in trials] == ["baseline", "reference", "all_fp16", "mixed"]
    assert study.user_attrs["seeded"] == ["baseline", "reference", "all_fp16", "mixed", "per_batch", "per_batch_fp16",
                                          "per_batch_tf32"]
    groups = {k.split(".", 2)[2] for t in trials for k in t.params if k.startswith("prec.fp16.")}
    assert groups == {"Conv", "Sigmoid", "Mul", "ReduceMean", "MatMul", "Add", "Softmax"}
    base = trials[0]
    assert base.user_attrs["feasible"] is True and base.user_attrs["bad_cases"] == []
    assert sorted(base.user_attrs["latency_ms"]) == ["1x32", "1x8", "4x32", "4x8"]
    assert base.value == pytest.approx(sum(base.user_attrs["latency_ms"].values()))
    result = json.loads((Path(base.user_attrs["trial_dir"]) / "result.json").read_text())
    assert result["model"] == "tinycnn" and result["engine_cache"] == "miss"
    assert {(c["batch"], c["length"]): c["shapes"]["x"] for c in result["cases"]} == {
        (1, 8): [1, 8, 8], (1, 32): [1, 8, 32], (4, 8): [4, 8, 8], (4, 32): [4, 8, 32]}
    assert result["build_report"]["profiles"] == [{"role": "contest", "batch": [1, 4], "frames": [8, 32],
                                                   "opt": [4, 32]}]
    assert (Path(base.user_attrs["trial_dir"]) / "fake_builds.txt").read_text() == "1"
    # mixed: FP16 but the op types that overflow or sum long reductions (the structural default)
    mixed = json.loads((Path(trials[3].user_attrs["trial_dir"]) / "result.json").read_text())["config"]
    assert {g for g, p in mixed["layer_precision"].items() if p == "fp32"} == {"ReduceMean", "Softmax"}

    # 4. freeze the best, rebuild it with the engine CLI and score it with evaluate.py, all by the spec
    assert search_main(["freeze", "--workload", str(own), "--work-dir", str(work), "--out", str(tmp_path / "cfg")]) == 0
    from engine.config import BuildConfig
    frozen = BuildConfig.load(tmp_path / "cfg" / "tinycnn.yaml")
    assert frozen.model == "tinycnn" and frozen.max_batch == 4

    monkeypatch.syspath_prepend(str(ENGINE_TESTS))
    import fake_backend
    fake_backend.install(monkeypatch, "8.6.0")
    from engine.__main__ import main as engine_main
    plan = tmp_path / "tinycnn.plan"
    assert engine_main(["build", "--config", str(tmp_path / "cfg" / "tinycnn.yaml"), "--workload", str(own),
                        "--onnx", str(own.parent / "tinycnn.onnx"), "--out", str(plan), "--work-dir", str(work),
                        "--no-progress"]) == 0
    import evaluate
    report = tmp_path / "eval.json"
    assert evaluate.main(["--workload", str(own), "--plan", str(plan), "--no-cwd-plugins", "--no-progress",
                          "--harness", "contest", "--json", str(report)]) == 0
    scored = json.loads(report.read_text())["models"]["tinycnn"]
    assert scored["total_cases"] == 4 and scored["good_cases"] == 4 and scored["constraint"] <= 0
    assert scored["cases"][0]["harness"] == "contest"


def test_a_bad_spec_is_one_line_and_exit_2_everywhere(own, tmp_path, capsys):
    from search.cli import main as search_main
    from workload.__main__ import main as workload_main
    import evaluate

    bad = own.with_name("bad.yaml")
    bad.write_text(SPEC.replace("dtype: float32", "dtype: complex64"))
    for run in (lambda: search_main(["tune", "--workload", str(bad), "--trials", "1"]),
                lambda: search_main(["status", "--workload", str(bad)]),
                lambda: evaluate.main(["--workload", str(bad)]),
                lambda: workload_main(["cases", "--workload", str(bad)])):
        assert run() == 2
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(err) == 1 and err[0].startswith("error: ") and "inputs[0].dtype: 'complex64'" in err[0], err
    assert search_main(["tune", "--workload", str(tmp_path / "nope.yaml"), "--trials", "1"]) == 2
    assert capsys.readouterr().err.strip() == f"error: workload spec {tmp_path / 'nope.yaml'} does not exist"
    assert search_main(["tune", "--workload", str(own), "--model", "encoder", "--trials", "1"]) == 2
    assert "name different models" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_build_sh_builds_a_workload(own, tmp_path):
    """WORKLOAD=spec bash build.sh: the spec's ONNX, name and cases; a stub TensorRT Python that answers
    `-m workload spec` with the real one and records the engine builds."""
    log = tmp_path / "calls.log"
    py = tmp_path / "python-rec"
    py.write_text(f'#!/bin/sh\ncase "$*" in "-m workload"*) exec {shlex.quote(sys.executable)} "$@" ;; esac\n'
                  f'echo "$*" >> "{log}"\nexit 0\n')
    py.chmod(py.stat().st_mode | stat.S_IEXEC)
    (own.parent / "cases").mkdir()
    (own.parent / "cases" / "calibration-tinycnn.npz").write_bytes(b"npz")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "tinycnn.yaml").write_text("model: tinycnn\nint8: true\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHON": str(py), "WORK": str(tmp_path / "work"),
           "CONFIG_DIR": str(tmp_path / "configs"), "OUT_DIR": str(tmp_path / "out"), "BUILD_PLUGINS": "off",
           "WORKLOAD": own.name}
    res = subprocess.run(["bash", str(ROOT / "build.sh")], capture_output=True, text=True, env=env, timeout=120,
                         cwd=own.parent)                     # a spec path relative to the caller
    assert res.returncode == 0, res.stderr
    (call,) = [c for c in log.read_text().splitlines() if c.startswith("-m engine build")]
    assert f"--onnx {own.parent}/tinycnn.onnx" in call and f"--out {tmp_path}/out/tinycnn.plan" in call
    assert f"--workload {own}" in call and f"--config {tmp_path}/configs/tinycnn.yaml" in call
    assert f"--calibration {own.parent}/cases/calibration-tinycnn.npz" in call
    assert f"== done: {tmp_path}/out/tinycnn.plan" in res.stdout
    both = subprocess.run(["bash", str(ROOT / "build.sh"), "--models", "encoder"], capture_output=True, text=True,
                          env=env, timeout=60, cwd=own.parent)
    assert both.returncode == 2 and "not both" in both.stderr
    env["WORKLOAD"] = str(own.with_name("missing.yaml"))
    res = subprocess.run(["bash", str(ROOT / "build.sh")], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 2 and res.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "missing.yaml does not exist" in res.stderr
