"""Studies with the fake worker on SQLite: states, user attrs, artifacts, constraints,
seeding once, resuming after a killed run."""
from __future__ import annotations

import json
import time
import warnings

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from engine.config import BuildConfig, baseline
from search.errors import NoFeasibleTrial, StorageError
from search.errors import SearchError
from search.trial_objective import TrialContext, TrialFailed, TrialObjective, artifact_store
from search.options import SpaceOptions, StudyOptions, TrialOptions, TuneOptions
from search.seeds import labelled_seeds
from search.space import SearchSpace
from search.storage import (best_feasible_trial, feasible_trials, make_storage, open_study, study_name_for,
                            trial_constraint)
from search.seeds import seed_study

SERVING_SEEDS = ["baseline", "reference", "all_fp16", "passes_fp32", "mixed", "per_batch", "per_batch_fp16",
                 "per_batch_tf32"]


def settings(work, timeout=60.0, grid="1x16,16x256", harness="serving"):
    return TrialContext(onnx=work / "onnx" / "encoder.onnx", data=work / "data", work_dir=work,
                        timing_cache=work / "timing-encoder.cache", cache_dir=work / "prepared", gpu="0",
                        trial=TrialOptions(harness=harness, trial_timeout_s=timeout, grid=grid))


def url(work):
    return f"sqlite:///{work / 'study.db'}"


def run(study, space, work, modes, n, fake_command, timeout=60.0):
    objective = TrialObjective(space, settings(work, timeout), artifact_store(work), command=fake_command(modes))
    study.optimize(objective, n_trials=n, catch=(TrialFailed,))


def enqueue_plain(study, space, n):
    """n fixed configs (the tests need known states)."""
    for i in range(n):
        cfg = BuildConfig(space.model, fp16=bool(i % 2), opt_level=i % 6)
        study.enqueue_trial(space.to_params(cfg))


def artifact_names(study, trial):
    metas = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
    return {m.filename: m.artifact_id for m in metas}


def test_ok_crash_hang_and_infeasible_trials(work, fake_command):
    study = open_study(url(work), "encoder", seed=0)
    space = SearchSpace("encoder")
    enqueue_plain(study, space, 6)
    run(study, space, work, {1: "crash", 2: "hang", 3: "infeasible", 4: "oom"}, 6, fake_command, timeout=3)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL,
                                         TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    ok, crash, hang, infeasible, oom, last = trials

    # a measured trial: value, attrs, artifacts the dashboard can show
    assert ok.value == pytest.approx(ok.user_attrs["objective"]) and ok.value > 0
    assert ok.user_attrs["harness"] == "serving" and crash.user_attrs["harness"] == "serving"
    assert ok.user_attrs["cases"][0]["cuda_graph"] is True and "profile" in ok.user_attrs["cases"][0]
    assert ok.user_attrs["feasible"] is True and trial_constraint(ok) <= 0
    assert ok.system_attrs["constraints"] == [ok.user_attrs["constraint"]]
    assert set(ok.user_attrs["latency_ms"]) == {"1x16", "16x256"}
    assert ok.user_attrs["precision_counts"] == {"fp16": 0, "fp32": 5}
    assert BuildConfig.from_dict(yaml.safe_load(ok.user_attrs["config_yaml"])) == space.sample(
        optuna.trial.FixedTrial(ok.params))
    names = artifact_names(study, ok)
    assert {"config.yaml", "request.json", "result.json", "eval.txt", "layers.json", "build.log"} <= set(names)
    store = artifact_store(work)
    with store.open_reader(names["result.json"]) as f:
        result = json.loads(f.read())
    assert result["objective"] == ok.value and result["harness"] == "serving"

    # failures: FAIL with a one-line reason, stderr as artifact, and the study went on
    assert crash.user_attrs["fail_reason"] == "error: build: RuntimeError: fake builder failure"
    assert "worker.stderr.txt" in artifact_names(study, crash)
    assert "timeout" in hang.user_attrs["fail_reason"] and hang.user_attrs["status"] == "timeout"
    assert "SIGKILL" in oom.user_attrs["fail_reason"]
    assert last.state == TrialState.COMPLETE

    # infeasible: COMPLETE and visible, with the constraint in user and system attrs
    assert infeasible.user_attrs["constraint"] > 0 and infeasible.user_attrs["feasible"] is False
    assert infeasible.system_attrs["constraints"][0] > 0
    assert infeasible.user_attrs["bad_cases"] == ["1x16"]
    assert infeasible not in feasible_trials(study)
    assert best_feasible_trial(study).number in (ok.number, last.number)


def test_empty_tactic_set_is_built_not_pruned(work, fake_command):
    study = open_study(url(work), "decoder", seed=0)
    space = SearchSpace("decoder")
    params = space.to_params(baseline("decoder"))
    params["tactic_sources"] = "custom"
    params.update({k: False for k in ("tactic.CUBLAS", "tactic.CUBLAS_LT", "tactic.CUDNN",
                                      "tactic.EDGE_MASK_CONVOLUTIONS", "tactic.JIT_CONVOLUTIONS")})
    study.enqueue_trial(params)
    objective = TrialObjective(space, settings(work), artifact_store(work), command=fake_command("ok"))
    study.optimize(objective, n_trials=1, catch=(TrialFailed,))
    (t,) = study.trials
    assert t.state == TrialState.COMPLETE
    assert "tactic_sources: []" in t.user_attrs["config_yaml"]


def test_a_trial_enqueued_with_a_choice_the_space_lacks_fails_before_building(work, fake_command):
    """An INT8 config (enqueued again while the run goes on) under a space without int8: FAIL, reason."""
    study = open_study(url(work), "encoder", seed=0)
    space = SearchSpace("encoder")
    int8 = SearchSpace("encoder", options=SpaceOptions(allow_int8=True))
    cfg = BuildConfig("encoder", fp16=True, int8=True, layer_precision={"feed_forward": "int8"})
    assert space.unsuggested(int8.to_params(cfg)) == ["calibrator", "int8", "prec.fp16+int8.feed_forward"]
    assert space.unsuggested(int8.to_params(BuildConfig("encoder", fp16=True))) == []   # int8 off: nothing lost
    study.enqueue_trial(int8.to_params(cfg), user_attrs={"plan": "rules/int8:x"})
    study.enqueue_trial(space.to_params(BuildConfig("encoder")))
    run(study, space, work, {}, 2, fake_command)
    refused, ok = study.trials
    assert refused.state == TrialState.FAIL and ok.state == TrialState.COMPLETE
    assert "enqueued with calibrator, int8, prec.fp16+int8.feed_forward" in refused.user_attrs["fail_reason"]
    assert "config_yaml" not in refused.user_attrs          # nothing was built under its label


def test_seeds_enqueued_once_and_resume_after_a_killed_run(work, fake_command):
    space = SearchSpace("encoder", passes=["fold_constants", "layernorm"])
    study = open_study(url(work), "encoder", seed=0)
    n = len(SERVING_SEEDS)
    assert seed_study(study, space) == n
    assert study.user_attrs["seeded"] == SERVING_SEEDS
    enqueue_plain(study, space, 1)
    run(study, space, work, {}, n + 1, fake_command)
    seeds = [t.user_attrs.get("seed") for t in study.trials]
    assert seeds == SERVING_SEEDS + [None]
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    ran = [BuildConfig.from_dict(yaml.safe_load(t.user_attrs["config_yaml"])) for t in study.trials]
    assert ran[:n] == [cfg for _, cfg in labelled_seeds(space)]     # each seed ran as its config
    assert ran[5].layout == "per_batch" and ran[6].fp16 and ran[7].tf32 and not ran[7].fp16
    assert ran[1].passes == ["fold_constants", "layernorm"]
    assert ran[3].passes == ["fold_constants", "layernorm"] and not ran[3].fp16
    assert ran[4].passes == ["fold_constants", "layernorm"] and ran[4].fp16
    assert ran[4].layer_precision == {"softmax": "fp32", "attention": "fp32", "norm": "fp32"}

    # A run is killed while a trial runs: its heartbeat stops, the trial stays RUNNING.
    storage = make_storage(url(work), heartbeat_interval=1, grace_period=1)
    killed = optuna.load_study(study_name="wenet-encoder-serving", storage=storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)     # "heartbeat ... used with Study.optimize"
        trial = killed.ask()
    storage.record_heartbeat(trial._trial_id)
    assert killed.trials[-1].state == TrialState.RUNNING
    time.sleep(2.5)      # past the grace period (SQLite's clock has whole seconds)

    # Resume: a new process opens the study again.
    resumed = open_study(url(work), "encoder", seed=1, heartbeat_interval=1, grace_period=1)
    stale = n + 1
    assert resumed.trials[stale].state == TrialState.FAIL      # the stale trial
    assert seed_study(resumed, space) == 0                      # not seeded again
    enqueue_plain(resumed, space, 2)
    run(resumed, space, work, {}, 2, fake_command)
    trials = resumed.get_trials()
    assert [t.number for t in trials] == list(range(stale + 3))
    assert [t.state for t in trials[stale + 1:]] == [TrialState.COMPLETE] * 2
    assert sum(1 for t in trials if "seed" in t.user_attrs) == n
    assert sorted(p.name for p in (work / "trials" / "wenet-encoder-serving").iterdir()) == \
        [f"{i:05d}" for i in range(stale + 3) if i != stale]


def test_every_model_and_harness_has_its_study_in_one_file(work):
    enc = open_study(url(work), "encoder")
    dec = open_study(url(work), "decoder")
    con = open_study(url(work), "encoder", "contest")
    assert (enc.study_name, dec.study_name, con.study_name) == \
        ("wenet-encoder-serving", "wenet-decoder-serving", "wenet-encoder-contest")
    assert sorted(optuna.study.get_all_study_names(url(work))) == \
        ["wenet-decoder-serving", "wenet-encoder-contest", "wenet-encoder-serving"]
    assert (con.user_attrs["model"], con.user_attrs["harness"]) == ("encoder", "contest")
    assert enc.direction == optuna.study.StudyDirection.MINIMIZE
    with pytest.raises(StorageError, match="holds encoder trials"):
        open_study(url(work), "decoder", study_name="wenet-encoder-serving")
    with pytest.raises(StorageError, match="holds contest-harness trials"):
        open_study(url(work), "encoder", "serving", study_name="wenet-encoder-contest")
    assert study_name_for("decoder", "contest") == "wenet-decoder-contest"
    with pytest.raises(SearchError, match="harness"):
        study_name_for("decoder", "bogus")


def test_objective_refuses_a_space_of_another_harness(work, fake_command):
    with pytest.raises(SearchError, match="contest harness"):
        TrialObjective(SearchSpace("encoder", options=SpaceOptions(harness="contest")), settings(work),
                       artifact_store(work), command=fake_command("ok"))


def test_no_feasible_trial(work):
    study = open_study(url(work), "encoder")
    with pytest.raises(NoFeasibleTrial, match="no feasible trial"):
        best_feasible_trial(study)


@pytest.mark.parametrize("bad,match", [
    ("not a url", "not a SQLAlchemy URL"),
    ("nosuchdb://x/y", "no database driver"),
])
def test_bad_storage_urls(bad, match):
    with pytest.raises(StorageError, match=match):
        make_storage(bad)


def test_missing_study_when_reading(work):
    with pytest.raises(StorageError, match="no study database"):
        open_study(url(work), "encoder", create=False)
    open_study(url(work), "decoder")
    with pytest.raises(StorageError, match="no study 'wenet-encoder-serving'"):
        open_study(url(work), "encoder", create=False)


def test_tune_options_round_trip_for_gpu_processes():
    opts = TuneOptions(study=StudyOptions(models=("encoder",), work_dir="w"), n_trials=3, gpus=("0", "1"),
                       worker_command=("python", "w.py"), trial=TrialOptions(harness="contest", plugin_libs=("a.so",),
                                                                              grid="stress"),
                       space=SpaceOptions(allow_int8=True, num_blocks=3))
    back = TuneOptions.from_json(opts.to_json())
    assert back == opts and isinstance(back.trial.plugin_libs, tuple) and isinstance(back.gpus, tuple)
    # the space follows the trials: their harness, and the batch range of their grid
    assert (opts.space.harness, opts.space.max_batch) == ("contest", 64)
    assert opts.study.storage == "sqlite:///w/study.db" and opts.onnx_dir == "w/onnx"


def test_seed_equal_to_an_earlier_one_is_enqueued_once(work):
    """With no registered pass, every-pass FP32 is the baseline: seven seeds, labels still right."""
    space = SearchSpace("decoder")
    study = open_study(url(work), "decoder", seed=0)
    labels = ["baseline", "reference", "all_fp16", "mixed", "per_batch", "per_batch_fp16", "per_batch_tf32"]
    assert seed_study(study, space) == len(labels)
    assert study.user_attrs["seeded"] == labels
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["seed"] for t in waiting] == labels
    assert waiting[3].system_attrs["fixed_params"]["fp16"] is True


def test_sqlite_transactions_take_the_write_lock_at_begin(tmp_path):
    """Two tuning processes must not both pop one enqueued trial: a transaction locks at BEGIN."""
    import sqlite3

    from search.storage import make_storage
    db = tmp_path / "s.db"
    storage = make_storage(f"sqlite:///{db}", heartbeat_interval=None)
    with storage.engine.connect() as conn:
        with conn.begin():
            other = sqlite3.connect(str(db), timeout=0.1, isolation_level=None)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            other.close()
    other = sqlite3.connect(str(db), timeout=0.1, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")          # free again once the transaction ended
    other.execute("ROLLBACK")
    other.close()


def test_time_spent_counts_finished_trials_and_splits_the_staged_ones():
    """status's time line: every finished trial's wall time; the stage split over the trials that have it
    (a pruned one has it since the worker's stage file; a stale one has no duration at all)."""
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from search.results import format_time, time_spent

    def trial(state, value=None, **attrs):
        return create_trial(state=state, value=value, params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)},
                            user_attrs=attrs)
    trials = [trial(TrialState.COMPLETE, 1.0, duration_s=40.0, prepare_s=4.0, build_s=30.0, eval_s=4.0),
              trial(TrialState.PRUNED, 2.0, duration_s=60.0, prepare_s=5.0, build_s=50.0, eval_s=2.0),
              trial(TrialState.FAIL, duration_s=20.0, build_s=15.0),             # no evaluation: not split
              trial(TrialState.FAIL, duration_s=999.0, interrupted="stale")]     # no duration
    t = time_spent(trials)
    assert (t["trials"], t["trial_s"], t["median_s"]) == (3, 120.0, 40.0)
    assert (t["staged"], t["staged_s"], t["build_s"], t["eval_s"], t["prepare_s"]) == (2, 100.0, 80.0, 6.0, 9.0)
    assert format_time(t) == "120 s in 3 trials (median 40 s); of 2 with stage times: build 80%, evaluate 6%, prepare 9%"
    assert format_time(time_spent([])) is None
    # trials that shared a GPU (tune --workers-per-gpu) also say how long they waited for it
    shared = trials + [trial(TrialState.COMPLETE, 1.0, duration_s=50.0, prepare_s=1.0, build_s=20.0, eval_s=4.0,
                             gpu_wait_s=25.0)]
    assert time_spent(shared)["gpu_wait_s"] == 25.0
    assert format_time(time_spent(shared)).endswith("build 67%, evaluate 7%, prepare 7%, wait-gpu 17%")
