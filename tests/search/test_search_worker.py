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
from search.request import STAGE_FILE, TrialRequest, read_stage, stage_seconds, write_request


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

    def inspect(plan, config, plugin_libs, layers_path):
        layers_path.write_text("[]")
        return {"fp16": 7, "fp32": 2}, {"honoured": True, "groups": {}}, None

    def evaluate(model, plan, data, grid, harness, runs, warmup, plugin_libs, on_case=None):
        calls["evaluate"] = dict(grid=grid, harness=harness, runs=runs, warmup=warmup)
        return fake_cases(model, grid, harness, on_case, bad=calls.get("bad", False))

    for name, fn in dict(prepare=prepare, build=build, inspect=inspect, evaluate=evaluate).items():
        monkeypatch.setattr(worker, name, fn)
    return calls


def fake_cases(model, grid, harness, on_case=None, bad=False):
    """Measured cases of `grid`, in its order (4x64 Bad when `bad`), on_case called for each."""
    run = {"harness": harness, "profile": 1, "cuda_graph": True, "graph_note": None, "host_ms": 0.02,
           "shapes": {"speech": (4, 64, 80)}}
    latency = {(1, 16): 0.5, (4, 64): 1.5}
    out = []
    for b, t in grid:
        r0 = 5e-3 if bad and (b, t) == (4, 64) else 1e-4
        out.append(CaseResult(b, t, latency.get((b, t), 1.0), CaseErrors(1e-3, r0, 0, 0, model), run=run))
        if on_case is not None:
            on_case(out[-1])
    return out


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
    # measured largest shape first (worker.case_order), reported in grid order
    assert stages["evaluate"] == dict(grid=[(4, 64), (1, 16)], harness="serving", runs=5, warmup=None)
    assert result["case_order"] == [[4, 64], [1, 16]] and result["duration_s"] >= result["eval_s"]
    lines = [json.loads(line) for line in (out / worker.PROGRESS_FILE).read_text().splitlines()]
    assert [(r["step"], r["batch"], r["length"], r["cumulative_ms"]) for r in lines] == [(0, 4, 64, 1.5),
                                                                                       (1, 1, 16, 2.0)]
    assert all(r["good"] and r["penalty"] == 1.0 for r in lines)
    assert result["engine_cache"] == "off" and result["engine_cache_key"] is None   # no TensorRT here
    assert any(w.startswith("engine cache off for this trial: TensorRTMissing") for w in result["warnings"])
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


@pytest.mark.parametrize("stage", ["prepare", "build", "inspect", "evaluate"])
def test_the_stage_file_names_the_stage_a_crash_happened_in(tmp_path, stages, monkeypatch, stage):
    # a signal kills without an error line: the runner reads stage.txt (search.request.read_stage)
    def crash(*a, **k):
        raise SystemExit(f"crashed in {stage}")    # stands in for the SIGSEGV: nothing after it runs
    monkeypatch.setattr(worker, stage, crash)
    with pytest.raises(SystemExit):
        worker.main(argv(tmp_path, BuildConfig("encoder")))
    assert read_stage(tmp_path / "trial") == stage
    # every stage entered up to the crash has its seconds (a pruned or failed trial records them)
    order = ["config", "prepare", "build", "inspect", "evaluate"]
    spent = stage_seconds(tmp_path / "trial")
    assert list(spent) == order[:order.index(stage) + 1] and all(v >= 0 for v in spent.values())


def test_stage_seconds_from_the_stage_file(tmp_path):
    (tmp_path / STAGE_FILE).write_text("prepare\t100\nbuild\t103.5\nevaluate\t140\n")
    assert stage_seconds(tmp_path, until=150.0) == {"prepare": 3.5, "build": 36.5, "evaluate": 10.0}
    (tmp_path / STAGE_FILE).write_text("build\n")              # an older worker's line: no time
    assert read_stage(tmp_path) == "build" and stage_seconds(tmp_path) == {}
    assert stage_seconds(tmp_path / "none") == {} and read_stage(tmp_path / "none") == ""


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

    import engine
    empty = types.ModuleType("engine.inspect")
    monkeypatch.setitem(__import__("sys").modules, "engine.inspect", empty)
    monkeypatch.setattr(engine, "inspect", empty, raising=False)     # also when another test imported it
    counts, honoured, warning = worker.inspect(Path(tmp_path / "x.plan"), BuildConfig("encoder"), [],
                                               tmp_path / "layers.json")
    assert counts == {} and honoured == {} and warning.startswith("inspector unavailable")


# --- the engine cache, through the backend test double --------------------------------------
ENGINE_TESTS = Path(__file__).resolve().parents[1] / "engine"
FAKE_TRT_WORKER = Path(__file__).with_name("fake_backend_worker.py")


@pytest.fixture
def fake_tensorrt(monkeypatch):
    monkeypatch.syspath_prepend(str(ENGINE_TESTS))
    import fake_backend
    return fake_backend.install(monkeypatch, "8.6.0")


@pytest.fixture
def trial_runner(tmp_path, monkeypatch, fake_tensorrt):
    """run(n, config, **options) -> result.json of trial n: real prepare, cache, build and inspect; evaluation faked."""
    import onnx

    from engine.tiny_model import tiny_encoder_model
    onnx.save(tiny_encoder_model(), str(tmp_path / "encoder.onnx"))
    evaluated = []

    def evaluate(model, plan, data, grid, harness, runs, warmup, plugin_libs, on_case=None):
        evaluated.append(plan.read_bytes())           # the plan is there, built or from the cache
        return fake_cases(model, grid, harness, on_case)
    monkeypatch.setattr(worker, "evaluate", evaluate)

    def run(n: int, cfg: BuildConfig, **options) -> dict:
        req = TrialRequest(config=cfg.save(tmp_path / f"config-{n}.yaml"), onnx=tmp_path / "encoder.onnx",
                           data=tmp_path / "data", out=tmp_path / "trials" / f"{n:05d}",
                           timing_cache=tmp_path / "timing.cache", cache_dir=tmp_path / "prepared",
                           trial=TrialOptions(**{"grid": "1x16,4x64", **options}))
        assert worker.main(["--request", str(write_request(req))]) == 0
        assert evaluated[-1]
        return json.loads((req.out / "result.json").read_text())
    return run


def test_an_equal_build_reuses_the_cached_plan(trial_runner, fake_tensorrt, tmp_path):
    fake = fake_tensorrt
    cfg = BuildConfig("encoder", passes=["layernorm"])
    first = trial_runner(0, cfg)
    key = first["engine_cache_key"]
    assert first["engine_cache"] == "miss" and fake.stats["builds"] == 1
    stored = tmp_path / "plans" / f"{key}.plan"                       # WORK/plans beside WORK/prepared
    meta = json.loads(stored.with_suffix(".json").read_text())
    assert meta["material"]["gpu"] == "Fake GPU H100" and meta["material"]["tensorrt"] == "8.6.0"
    assert meta["material"]["config"] == cfg.to_dict() and meta["built_by"].endswith("00000")
    assert not (tmp_path / "trials" / "00000" / "encoder.plan").exists()  # the trial's copy is gone, the cache's not

    second = trial_runner(1, cfg, harness="contest")                  # another harness: the same build
    assert second["engine_cache"] == "hit" and second["engine_cache_key"] == key
    assert fake.stats["builds"] == 1
    assert second["build_report"] == first["build_report"] and second["cached_build"]["hits"] == 1
    assert "engine cache hit" in (tmp_path / "trials" / "00001" / "build.log").read_text()
    assert second["precision_counts"] == first["precision_counts"]       # inspected from the cached plan
    assert stored.is_file() and not (tmp_path / "trials" / "00001" / "encoder.plan").exists()

    other = trial_runner(2, BuildConfig("encoder", passes=["layernorm"], opt_level=2))
    assert other["engine_cache"] == "miss" and other["engine_cache_key"] != key and fake.stats["builds"] == 2

    kept = trial_runner(3, cfg, keep_plans=True)
    assert kept["engine_cache"] == "hit" and fake.stats["builds"] == 2
    assert (tmp_path / "trials" / "00003" / "encoder.plan").read_bytes() == stored.read_bytes()

    off = trial_runner(4, cfg, plan_cache_gib=0)
    assert off["engine_cache"] == "off" and off["engine_cache_key"] is None and fake.stats["builds"] == 3


def test_a_cache_too_small_for_the_plan_builds_and_says_so(trial_runner, fake_tensorrt, tmp_path):
    first = trial_runner(0, BuildConfig("encoder"), plan_cache_gib=1e-9)
    assert first["engine_cache"] == "miss"
    assert any("exceeds the engine cache's cap" in w for w in first["warnings"])
    assert trial_runner(1, BuildConfig("encoder"), plan_cache_gib=1e-9)["engine_cache"] == "miss"
    assert fake_tensorrt.stats["builds"] == 2


def test_a_resumed_tune_with_carried_caches_builds_nothing_again(tmp_path):
    """Session 1 tunes; its work dir (study.db, plans/, prepared/, timing caches) is carried to the
    next session, whose new study of the other harness starts with the same baseline: a cache hit."""
    import shutil
    import sys

    import onnx
    import optuna

    from engine.tiny_model import tiny_encoder_model, write_cases
    from search.options import StudyOptions, TuneOptions
    from search.storage import open_study
    from search.tuning import tune

    first = tmp_path / "session1" / "work"
    (first / "onnx").mkdir(parents=True)
    onnx.save(tiny_encoder_model(), str(first / "onnx" / "encoder.onnx"))
    write_cases(first / "data", first / "onnx" / "encoder.onnx", shapes=[(1, 16), (4, 64)])

    def session(work, harness):
        opts = TuneOptions(study=StudyOptions(work_dir=str(work), models=("encoder",)), n_trials=1,
                           worker_command=(sys.executable, str(FAKE_TRT_WORKER)), progress=False,
                           trial=TrialOptions(harness=harness, grid="1x16,4x64", runs=2, warmup=0))
        (summary,) = tune(opts)
        assert summary["complete"] == 1, summary
        study = open_study(opts.study.storage, "encoder", harness, create=False)
        (trial,) = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))      # the other seeds wait
        return trial, (work / "trials" / f"wenet-encoder-{harness}" / "00000")

    built, built_dir = session(first, "serving")
    assert built.user_attrs["engine_cache"] == "miss" and (built_dir / "fake_builds.txt").read_text() == "1"
    assert built.user_attrs["duration_s"] > 0 and built.user_attrs["seed"] == "baseline"
    assert sorted(built.intermediate_values) == [0, 1]          # reported per case, largest first
    assert built.intermediate_values[1] == pytest.approx(built.value)

    carried = tmp_path / "session2" / "work"
    shutil.copytree(first, carried)
    reused, reused_dir = session(carried, "contest")
    assert reused.user_attrs["engine_cache"] == "hit" and (reused_dir / "fake_builds.txt").read_text() == "0"
    assert reused.user_attrs["engine_cache_key"] == built.user_attrs["engine_cache_key"]
    serving = open_study(f"sqlite:///{carried / 'study.db'}", "encoder", "serving", create=False)
    assert [t.number for t in serving.get_trials(states=(optuna.trial.TrialState.COMPLETE,))] == [0]  # intact
