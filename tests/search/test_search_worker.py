"""The trial worker's glue on CPU: the TensorRT stages are replaced, the request file,
the result file, the tables, the stage-named errors and plan clean-up are real."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import search.worker as worker
from engine.config import BuildConfig
from scoring.metrics import CaseErrors
from scoring.objective import CaseResult, constraint, objective
from search.options import TrialOptions
from search.request import TrialRequest, write_request


@pytest.fixture
def stages(monkeypatch):
    """Stand-ins for prepare / build / inspect / evaluate that record their calls."""
    calls = {}

    def prepare(onnx, config, cache_dir):
        calls["prepare"] = (onnx, config, cache_dir)
        return cache_dir / "prepared.onnx", {"fold_constants": 3}

    def build(onnx, config, plan, timing_cache, calibration, plugin_libs, log_path):
        calls["build"] = dict(onnx=onnx, plan=plan, timing_cache=timing_cache, calibration=calibration,
                              plugin_libs=plugin_libs)
        plan.write_bytes(b"engine")
        log_path.write_text("built\n")
        return {"layers": 12}

    def inspect(plan, model, plugin_libs, layers_path):
        layers_path.write_text("[]")
        return {"fp16": 7, "fp32": 2}, None

    def evaluate(model, plan, data, grid, harness, runs, warmup, plugin_libs):
        calls["evaluate"] = dict(grid=grid, harness=harness, runs=runs, warmup=warmup)
        bad = calls.get("bad", False)
        run = {"harness": harness, "profile": 1, "cuda_graph": True, "graph_note": None, "host_ms": 0.02,
               "shapes": {"speech": (4, 64, 80)}}
        return [CaseResult(1, 16, 0.5, CaseErrors(1e-3, 1e-4, 0, 0, model), run=run),
                CaseResult(4, 64, 1.5, CaseErrors(1e-3, 5e-3 if bad else 1e-4, 0, 0, model), run=run)]

    for name, fn in dict(prepare=prepare, build=build, inspect=inspect, evaluate=evaluate).items():
        monkeypatch.setattr(worker, name, fn)
    return calls


def argv(tmp_path, cfg: BuildConfig, **options):
    """The worker's command line: the request file, as the runner writes it."""
    path = cfg.save(tmp_path / "config.yaml")
    req = TrialRequest(config=path, onnx=tmp_path / "m.onnx", data=tmp_path / "data", out=tmp_path / "trial",
                       timing_cache=tmp_path / "t.cache", cache_dir=tmp_path / "prep",
                       trial=TrialOptions(**{"grid": "1x16,4x64", "runs": 5, **options}))
    return ["--request", str(write_request(req))]


def test_result_json_and_tables(tmp_path, stages):
    cfg = BuildConfig("encoder", fp16=True, passes=["fold_constants"])
    assert worker.main(argv(tmp_path, cfg)) == 0
    out = tmp_path / "trial"
    result = json.loads((out / "result.json").read_text())
    cases = [CaseResult(1, 16, 0.5, CaseErrors(1e-3, 1e-4, 0, 0, "encoder")),
             CaseResult(4, 64, 1.5, CaseErrors(1e-3, 1e-4, 0, 0, "encoder"))]
    assert result["objective"] == pytest.approx(objective(cases)) == 2.0
    assert result["constraint"] == pytest.approx(constraint(cases)) and result["feasible"] is True
    assert BuildConfig.from_dict(result["config"]) == cfg
    assert result["sites"] == {"fold_constants": 3} and result["precision_counts"] == {"fp16": 7, "fp32": 2}
    assert [(c["batch"], c["length"], c["good"]) for c in result["cases"]] == [(1, 16, True), (4, 64, True)]
    assert {"build_s", "eval_s", "prepare_s"} <= set(result)
    assert result["harness"] == "serving" and result["trial_options"]["runs"] == 5
    assert result["cases"][0]["profile"] == 1 and result["cases"][0]["cuda_graph"] is True   # evaluate.case_row
    assert stages["evaluate"] == dict(grid=((1, 16), (4, 64)), harness="serving", runs=5, warmup=None)
    assert stages["build"]["calibration"] is None and stages["build"]["timing_cache"] == tmp_path / "t.cache"
    assert "Good" in (out / "eval.txt").read_text()
    assert not (out / "encoder.plan").exists()          # engines are not kept by default


def test_keep_plan_and_int8_calibration(tmp_path, stages):
    cfg = BuildConfig("decoder", int8=True)
    assert worker.main(argv(tmp_path, cfg, keep_plans=True, harness="contest")) == 0
    assert stages["evaluate"]["harness"] == "contest"
    assert (tmp_path / "trial" / "decoder.plan").read_bytes() == b"engine"
    assert stages["build"]["calibration"] == tmp_path / "data" / "calibration-decoder.npz"


def test_bad_case_is_infeasible(tmp_path, stages):
    stages["bad"] = True
    assert worker.main(argv(tmp_path, BuildConfig("encoder"))) == 0
    result = json.loads((tmp_path / "trial" / "result.json").read_text())
    assert result["constraint"] > 0 and result["feasible"] is False
    assert result["objective"] > 2.0            # the Bad case is penalised


def test_stage_failure_names_the_stage(tmp_path, stages, monkeypatch, capsys):
    def broken_build(*a, **k):
        raise RuntimeError("no implementation for layer X\nsecond line")
    monkeypatch.setattr(worker, "build", broken_build)
    assert worker.main(argv(tmp_path, BuildConfig("encoder"))) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "error: build: RuntimeError: no implementation for layer X"
    assert not (tmp_path / "trial" / "result.json").exists()


def test_missing_request_file(tmp_path, stages, capsys):
    assert worker.main(["--request", str(tmp_path / "nowhere.json")]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: request: SearchError: cannot read")


def test_bad_config_file(tmp_path, stages, capsys):
    bad = tmp_path / "config.yaml"
    args = argv(tmp_path, BuildConfig("encoder"))
    bad.write_text("model: joiner\n")
    assert worker.main(args) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: config: ConfigError: model")


def test_missing_inspector_is_a_warning_not_a_failure(tmp_path, monkeypatch):
    """The real inspect() against an engine module without the inspector functions."""
    import types
    monkeypatch.setitem(__import__("sys").modules, "engine.inspect", types.ModuleType("engine.inspect"))
    counts, warning = worker.inspect(Path(tmp_path / "x.plan"), "encoder", [], tmp_path / "layers.json")
    assert counts == {} and warning.startswith("inspector unavailable")
