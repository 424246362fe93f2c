"""Multi-fidelity: the case order, the step pruner, and PRUNED trials with the fake worker
(its worker killed, the reason and the partial measurement kept, visible in status and export)."""
from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from engine.config import BuildConfig
from search.errors import SearchError
from search.trial_objective import TrialContext, TrialFailed, TrialObjective, artifact_store
from search.options import TrialOptions
from search.pruning import StepPercentilePruner, make_pruner
from search.results import export_study, summary
from search.runner import worker_args
from search.space import SearchSpace
from search.storage import open_study
from search.worker import case_order

FAKE_WORKER = Path(__file__).with_name("fake_trial_worker.py")
GRID = "1x16,16x256"


def test_cases_are_measured_largest_first_in_one_fixed_order():
    grid = [(1, 16), (16, 256), (4, 64), (16, 16), (1, 256)]
    assert case_order(grid) == [(16, 256), (16, 16), (4, 64), (1, 256), (1, 16)]
    assert case_order(list(reversed(grid))) == case_order(grid)


# --- the pruner on a study in memory ----------------------------------------------------------
def study_of(trials):
    """A study with COMPLETE trials given as (value, {step: partial}, constraint)."""
    study = optuna.create_study(direction="minimize")
    for value, partial, c in trials:
        study.add_trial(optuna.trial.create_trial(value=value, intermediate_values=partial,
                                                  user_attrs={"constraint": c}))
    return study


def running(study, pruner, *partials):
    trial = study.ask()
    study.pruner = pruner
    for step, value in enumerate(partials):
        trial.report(value, step)
    return trial


INFEASIBLE = 0.5        # the complete trials' constraint: "worse than the best" needs a feasible one


def test_median_rule_compares_the_same_step_after_the_startup_trials():
    complete = [(v + 2.0, {0: v, 1: v + 2.0}, INFEASIBLE) for v in (8.0, 9.0, 10.0, 11.0, 12.0)]
    study = study_of(complete)
    pruner = StepPercentilePruner(50.0, n_startup_trials=5)
    trial = running(study, pruner, 9.5)
    assert not trial.should_prune()                         # 9.5 < median 10 at step 0
    trial.report(13.0, 1)
    assert trial.should_prune()                             # 13 > median 12 at step 1
    assert pruner.last_reason == "13.000 ms after 2 case(s) > the median 12.000 ms of 5 complete trial(s) at that step"
    # Optuna's MedianPruner takes the best value over the trial's steps (9.5, its first): never prunes a sum
    assert not optuna.pruners.MedianPruner(n_startup_trials=5).prune(study, study.trials[-1])

    quarter = StepPercentilePruner(25.0, n_startup_trials=5)
    assert running(study, quarter, 9.5).should_prune() and "25th percentile 9.000" in quarter.last_reason
    assert not running(study_of(complete[:4]), StepPercentilePruner(50.0, 5), 30.0).should_prune()   # startup


def test_a_partial_sum_above_the_best_feasible_objective_is_pruned_at_once():
    study = study_of([(5.0, {0: 4.0, 1: 5.0}, -0.5)])
    pruner = StepPercentilePruner(50.0, n_startup_trials=5)
    assert not running(study, pruner, 4.5).should_prune()
    assert running(study, pruner, 6.0).should_prune()
    assert pruner.last_reason.startswith("already worse than the best: 6.000 ms after 1 case(s) > best feasible "
                                         "objective 5.000 ms")


def test_pruner_option():
    assert isinstance(make_pruner(TrialOptions(pruner="none")), optuna.pruners.NopPruner)
    assert make_pruner(TrialOptions()).percentile == 50 and make_pruner(TrialOptions()).n_startup_trials == 5
    assert make_pruner(TrialOptions(pruner="percentile", prune_percentile=10)).percentile == 10
    for bad in (dict(prune_bad_ratio=0.5), dict(prune_percentile=100), dict(plan_cache_gib=-1),
                dict(prune_startup_trials=-1)):
        with pytest.raises(SearchError):
            TrialOptions(**bad).validate()


# --- pruned trials with the fake worker -------------------------------------------------------
def command(modes: dict[int, str], *extra: str):
    def build(req):
        mode = modes.get(int(req.out.name), "ok")
        return [sys.executable, str(FAKE_WORKER), *worker_args(req), "--fake-mode", mode, "--fake-delay", "0.2",
                *extra]
    return build


def tune_fake(work, configs, modes, *extra, attrs=None, **options):
    study = open_study(f"sqlite:///{work / 'study.db'}", "encoder", seed=0)
    space = SearchSpace("encoder")
    for i, cfg in enumerate(configs):
        study.enqueue_trial(space.to_params(cfg), user_attrs=(attrs or {}).get(i))
    context = TrialContext(onnx=work / "onnx" / "encoder.onnx", data=work / "data", work_dir=work,
                           timing_cache=work / "timing.cache", cache_dir=work / "prepared",
                           trial=TrialOptions(grid=GRID, trial_timeout_s=60.0, **options))
    objective = TrialObjective(space, context, artifact_store(work), command=command(modes, *extra))
    study.optimize(objective, n_trials=len(configs), catch=(TrialFailed,))
    return study


def worker_pid(work, study, n):
    return int((work / "trials" / study.study_name / f"{n:05d}" / "worker.pid").read_text())


def test_a_slow_trial_is_pruned_and_its_worker_killed(work, process_alive):
    study = tune_fake(work, [BuildConfig("encoder", fp16=True), BuildConfig("encoder")], {1: "slow"})
    done, pruned = study.get_trials()
    assert done.state == TrialState.COMPLETE and pruned.state == TrialState.PRUNED
    assert not process_alive(worker_pid(work, study, 1))

    # the complete trial reported every case in the fixed order: its last step is its objective
    assert sorted(done.intermediate_values) == [0, 1]
    assert done.intermediate_values[0] == pytest.approx(done.user_attrs["latency_ms"]["16x256"])
    assert done.intermediate_values[1] == pytest.approx(done.value)

    a = pruned.user_attrs
    assert a["status"] == "pruned" and a["prune_reason"].startswith("already worse than the best")
    assert a["cases_measured"] >= 1 and a["prune_step"] == a["cases_measured"] - 1
    assert pruned.intermediate_values[0] == pytest.approx(a["latency_ms"]["16x256"])
    assert pruned.intermediate_values[0] > done.value
    assert a["constraint"] <= 0 and a["bad_cases"] == [] and a["duration_s"] > 0 and done.user_attrs["duration_s"] > 0
    # where a pruned trial's time went, from the worker's stage file: the evaluation it was stopped in
    assert a["build_s"] >= 0 and a["prepare_s"] >= 0 and a["eval_s"] >= 0.2     # at least one progress delay
    metas = optuna.artifacts.get_all_artifact_meta(pruned, storage=study._storage)
    assert "progress.jsonl" in {m.filename for m in metas}

    # visible as PRUNED, with the reason, in status and export
    assert summary(study)["states"]["PRUNED"] == 1 and summary(study)["feasible"] == 1
    record = export_study(study)["trials"][1]
    assert record["state"] == "PRUNED" and record["prune_reason"] == a["prune_reason"]
    assert record["feasible"] is False and record["duration_s"] == a["duration_s"]
    assert record["intermediate_values"]["0"] == pruned.intermediate_values[0]


def test_a_case_bad_by_a_wide_margin_is_pruned_without_startup_trials(work, process_alive):
    study = tune_fake(work, [BuildConfig("encoder")], {0: "bad"})
    (t,) = study.get_trials()
    assert t.state == TrialState.PRUNED and not process_alive(worker_pid(work, study, 0))
    assert t.user_attrs["prune_reason"] == ("case 16x256 is Bad by a wide margin: worst error 10x its threshold "
                                            "(> 3x)")
    assert t.user_attrs["bad_cases"] == ["16x256"] and t.user_attrs["constraint"] == pytest.approx(9.0)


def test_no_pruner_lets_every_trial_finish(work):
    study = tune_fake(work, [BuildConfig("encoder")], {0: "bad"}, "--fake-linger", "0.2", pruner="none")
    (t,) = study.get_trials()
    assert t.state == TrialState.COMPLETE and t.user_attrs["constraint"] > 0       # infeasible, measured
    assert sorted(t.intermediate_values) == [0, 1] and "prune_reason" not in t.user_attrs


def test_planned_and_seed_trials_are_measured_in_full(work):
    """The same slow and Bad trials as above, as a plan and a seed: neither is stopped, both complete."""
    configs = [BuildConfig("encoder", fp16=True), BuildConfig("encoder"), BuildConfig("encoder", tf32=False)]
    study = tune_fake(work, configs, {1: "slow", 2: "bad"}, "--fake-linger", "0.2",
                      attrs={1: {"plan": "rules/norms/obey"}, 2: {"seed": "baseline"}})
    done, planned, seed = study.get_trials()
    assert [t.state for t in (done, planned, seed)] == [TrialState.COMPLETE] * 3
    assert planned.value > done.value and "prune_reason" not in planned.user_attrs
    assert seed.user_attrs["constraint"] > 0 and sorted(seed.intermediate_values) == [0, 1]


def test_a_failed_trial_records_the_seconds_of_the_stages_it_entered(work):
    study = tune_fake(work, [BuildConfig("encoder")], {0: "segfault"})
    (t,) = study.get_trials()
    assert t.state == TrialState.FAIL and "in its build stage" in t.user_attrs["fail_reason"]
    assert t.user_attrs["build_s"] >= 0 and "eval_s" not in t.user_attrs
