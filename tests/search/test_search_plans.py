"""Planned trials (ablation, sensitivity): the configs, their enqueueing, the sensitivity arithmetic
on hand-made trials, and the plan -> tune -> sensitivity CLI flow with the fake worker."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from engine.layer_groups import GROUPS
from engine.config import BuildConfig
from search.cli import main
from search.errors import SearchError
from search.plans import (ablation_configs, enqueue_plan, groups_worth_a_dimension, predict_mixed, sensitivity,
                          sensitivity_configs)
from search.seeds import HARNESS_SEED_LABELS
from search.options import SpaceOptions
from search.space import SearchSpace
from search.storage import open_study
from stand_ins import write_stand_ins

PASSES = ["fold_constants", "layernorm"]
PLUGINS = ["skip_layernorm_plugin", "skip_layernorm_plugin_fp16"]
FAKE_WORKER = Path(__file__).with_name("fake_trial_worker.py")


def test_ablation_covers_each_candidate_alone_and_together_in_both_precisions():
    space = SearchSpace("encoder", PASSES, PLUGINS)
    labels = dict(ablation_configs(space))
    assert set(labels) == {
        "ablation/fp32/none", "ablation/fp32/pass:fold_constants", "ablation/fp32/pass:layernorm",
        "ablation/fp32/plugin:skip_layernorm_plugin", "ablation/fp32/all_passes",
        "ablation/fp16/none", "ablation/fp16/pass:fold_constants", "ablation/fp16/pass:layernorm",
        "ablation/fp16/plugin:skip_layernorm_plugin", "ablation/fp16/plugin:skip_layernorm_plugin_fp16",
        "ablation/fp16/all_passes"}
    assert labels["ablation/fp16/pass:layernorm"].passes == ["layernorm"] and labels["ablation/fp16/none"].fp16
    assert labels["ablation/fp32/all_passes"].passes == PASSES and not labels["ablation/fp32/all_passes"].fp16
    for cfg in labels.values():       # every planned config is a point of the space
        space.to_params(cfg)


def test_sensitivity_pins_one_group_fp32_at_a_time():
    space = SearchSpace("decoder")
    configs = dict(sensitivity_configs(space))
    assert set(configs["sensitivity/fp16/all"].layer_precision.values()) == {"fp16"}
    for g in GROUPS["decoder"]:
        prec = configs[f"sensitivity/fp32:{g}"].layer_precision
        assert prec[g] == "fp32" and sum(v == "fp32" for v in prec.values()) == 1
        assert configs[f"sensitivity/fp32:{g}"].precision_constraints == "obey"


def test_enqueue_is_idempotent_by_label(tmp_path):
    study = open_study(f"sqlite:///{tmp_path / 's.db'}", "encoder")
    space = SearchSpace("encoder", PASSES)
    first = enqueue_plan(study, space, "ablation")
    assert len(first) == len(ablation_configs(space)) and enqueue_plan(study, space, "ablation") == []
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["plan"] for t in waiting] == first
    with pytest.raises(SearchError, match="unknown plan"):
        enqueue_plan(study, space, "everything")


def _trial(study, label, ratios, latencies):
    cases = [{"batch": 1, "length": 16, "latency_ms": lat, "good": r < 1, "worst_ratio": r}
             for r, lat in zip(ratios, latencies)]
    study.add_trial(optuna.trial.create_trial(
        params={"fp16": True}, distributions={"fp16": CategoricalDistribution((False, True))},
        value=sum(latencies), user_attrs={"plan": label, "cases": cases}))


def test_sensitivity_orders_groups_and_predicts_the_cheapest_good_mix():
    space = SearchSpace("encoder")
    study = optuna.create_study()
    with pytest.raises(SearchError, match="no finished sensitivity/fp16/all"):
        sensitivity(study)
    _trial(study, "sensitivity/fp16/all", [1.5, 1.2], [10, 10])
    _trial(study, "sensitivity/fp32:norm", [0.9, 0.8], [11, 11])          # gain 0.6, cost 2 ms
    _trial(study, "sensitivity/fp32:softmax", [1.3, 1.1], [10.5, 10.5])    # gain 0.2, cost 1 ms
    _trial(study, "sensitivity/fp32:feed_forward", [1.5, 1.2], [15, 15])   # gain 0, cost 10 ms
    base, effects = sensitivity(study)
    assert [e.group for e in effects] == ["norm", "softmax", "feed_forward"]
    assert effects[0].gain == pytest.approx(0.6) and effects[0].cost_ms == pytest.approx(2.0)
    cfg, predicted, chosen = predict_mixed(space, base, effects, margin=0.95)
    assert chosen == ["norm"] and predicted == pytest.approx(0.9)
    assert cfg.layer_precision["norm"] == "fp32" and cfg.layer_precision["softmax"] == "fp16"
    _, predicted, chosen = predict_mixed(space, base, effects, margin=0.8)   # norm is not enough
    assert chosen == ["norm", "softmax"] and predicted == pytest.approx(0.7)


def _trial_by_batch(study, label, worst_by_batch, latency, plugin=False):
    cases = [{"batch": b, "length": 16, "latency_ms": latency, "good": r < 1, "worst_ratio": r}
             for b, r in worst_by_batch.items()]
    bools = CategoricalDistribution((False, True))
    study.add_trial(optuna.trial.create_trial(
        params={"fp16": True, "plugin.wenet_log_softmax_plugin": plugin, "prec.fp16.norm": "fp32" if "norm" in label
                else "fp16"},
        distributions={"fp16": bools, "plugin.wenet_log_softmax_plugin": bools,
                       "prec.fp16.norm": CategoricalDistribution(("fp16", "fp32"))},
        value=latency * len(cases), user_attrs={"plan": label, "cases": cases}))


def test_a_sweep_trial_that_differs_in_more_than_its_pin_is_not_credited_to_its_group():
    """The H100 sweep's plans ran with sampled plugins: a pin whose trial also had the log-softmax plugin on
    showed the plugin's gain as the group's. Such a group is flagged and kept out of the prediction."""
    space = SearchSpace("encoder")
    study = optuna.create_study()
    _trial_by_batch(study, "sensitivity/fp16/all", {1: 1.1, 4: 1.1}, 10)
    _trial_by_batch(study, "sensitivity/fp32:norm", {1: 0.5, 4: 0.6}, 11)                      # the pin alone
    _trial_by_batch(study, "sensitivity/fp32:softmax", {1: 0.2, 4: 0.2}, 10, plugin=True)     # pin + plugin
    base, effects = sensitivity(study)
    by_group = {e.group: e for e in effects}
    assert by_group["softmax"].differs == ("plugin.wenet_log_softmax_plugin",) and by_group["norm"].differs == ()
    assert groups_worth_a_dimension(base, effects) == ["norm"]
    _, _, chosen = predict_mixed(space, base, effects, margin=0.9)
    assert chosen == ["norm"]                       # not the cheaper, larger-looking softmax gain


def test_sensitivity_predicts_per_batch_where_each_group_fixes_one_profile():
    """Each batch bucket is its own profile: a group that fixes one and a group that fixes the other are both
    needed (neither lowers the worst ratio over the whole grid alone), and a group that fixes one profile but
    wrecks another (the decoder's output pin at batch 1 on the H100) is not taken."""
    space = SearchSpace("encoder")
    study = optuna.create_study()
    _trial_by_batch(study, "sensitivity/fp16/all", {1: 1.5, 4: 1.5}, 10)
    _trial_by_batch(study, "sensitivity/fp32:norm", {1: 0.5, 4: 1.5}, 11)
    _trial_by_batch(study, "sensitivity/fp32:softmax", {1: 1.5, 4: 0.6}, 11)
    _trial_by_batch(study, "sensitivity/fp32:feed_forward", {1: 5.0, 4: 0.2}, 9)     # faster, Bad at batch 1
    base, effects = sensitivity(study)
    norm = next(e for e in effects if e.group == "norm")
    assert norm.gain == pytest.approx(0.0) and norm.by_batch == {1: 0.5, 4: 1.5}
    _, predicted, chosen = predict_mixed(space, base, effects, margin=0.9)
    assert sorted(chosen) == ["norm", "softmax"] and predicted == pytest.approx(0.6)
    _trial_by_batch(study, "sensitivity/fp32:conv", {1: 1.5, 4: 1.495}, 12)          # removes almost nothing
    base, effects = sensitivity(study)
    assert groups_worth_a_dimension(base, effects) == ["norm", "softmax", "feed_forward"]   # conv's pin only costs


def test_references_are_the_bases_fp32_and_tf32_twins():
    """A mix's speed-up is measured against FP32 engines of its own layout: the twins keep everything of the base
    (layout, buckets, passes, builder level) but its lower precision, and drop FP16-I/O plugin variants."""
    from search.plans import PlanBase, plan_configs
    space = SearchSpace("decoder", plugins=("wenet_layernorm_plugin", "wenet_layernorm_plugin_fp16"),
                        options=SpaceOptions(harness="serving", max_opt_level=3))
    mix = BuildConfig("decoder", fp16=True, tf32=True, layout="per_batch", batch_buckets=[1, 4, 16], opt_level=5,
                      plugins=["wenet_layernorm_plugin", "wenet_layernorm_plugin_fp16"],
                      layer_precision={"output": "fp32", "softmax": "fp16"})
    (l32, fp32), (ltf, tf32) = plan_configs(space, "references", PlanBase("trial11", mix))
    assert (l32, ltf) == ("references/fp32@trial11", "references/tf32@trial11")
    for twin in (fp32, tf32):
        assert not twin.fp16 and not twin.uses_int8 and twin.layer_precision == {}
        assert twin.layout == "per_batch" and twin.batch_buckets == [1, 4, 16] and twin.opt_level == 3
        assert twin.plugins == ["wenet_layernorm_plugin"]
        space.to_params(twin)                                   # the space can express both
    assert (fp32.tf32, tf32.tf32) == (False, True)


def test_plan_tune_sensitivity_cli(tmp_path, capsys):
    work = tmp_path / "work"
    write_stand_ins(work, ("decoder",))
    common = ["--work-dir", str(work), "--model", "decoder"]
    assert main(["plan", *common, "--plan", "sensitivity"]) == 0
    n = len(GROUPS["decoder"]) + 1
    printed = capsys.readouterr().out
    assert f"wenet-decoder-serving: {n} sensitivity trials enqueued" in printed
    seeds = HARNESS_SEED_LABELS["serving"]         # a new study: the harness's own seeds come first
    assert f"new study, its {len(seeds)} seed trials enqueued first" in printed
    worker = shlex.join([sys.executable, str(FAKE_WORKER)])
    assert main(["tune", *common, "--trials", str(n + len(seeds)), "--grid", "1x16", "--no-progress",
                 "--worker-command", worker]) == 0
    study = open_study(f"sqlite:///{work / 'study.db'}", "decoder", create=False)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert [t.user_attrs.get("seed") for t in done[:len(seeds)]] == list(seeds)   # tune added no other seed
    assert done[len(seeds)].user_attrs["plan"] == "sensitivity/fp16/all"          # then the plan, in order
    assert len(done) == n + len(seeds)
    out_json = tmp_path / "sens.json"
    assert main(["sensitivity", *common, "--enqueue", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "(all fp16)" in text and "predicted: FP32 for no group" in text   # the fake worker's errors are tiny
    data = json.loads(out_json.read_text())["wenet-decoder-serving"]
    assert len(data["rows"]) == n and data["predicted_fp32_groups"] == []
    assert study.get_trials(states=(TrialState.WAITING,))[-1].user_attrs["plan"] == "sensitivity/predicted"
    with pytest.raises(SystemExit) as exc:                  # an unknown plan is a usage error
        main(["plan", *common, "--plan", "bogus"])
    assert exc.value.code == 2


def test_a_waiting_int8_plan_is_refused_by_a_tune_without_allow_int8(tmp_path, capsys):
    """Optuna would drop its int8 parameters and run an FP16 mix under the INT8 plan's label."""
    work = tmp_path / "work"
    write_stand_ins(work, ("decoder",))
    common = ["--work-dir", str(work), "--model", "decoder"]
    assert main(["plan", *common, "--plan", "rules", "--allow-int8"]) == 0
    capsys.readouterr()
    worker = shlex.join([sys.executable, str(FAKE_WORKER)])
    tune = ["tune", *common, "--trials", "1", "--grid", "1x16", "--no-progress", "--worker-command", worker]
    assert main(tune) == 2
    err = capsys.readouterr().err
    assert "waiting trial 0 (rules/norms/obey) " not in err        # the FP32/FP16 rules plans run anywhere
    assert "needs" in err and "int8" in err and "(tune with --allow-int8)" in err and "Traceback" not in err
    study = open_study(f"sqlite:///{work / 'study.db'}", "decoder", create=False)
    assert not study.get_trials(states=(TrialState.COMPLETE,))      # nothing ran, nothing was consumed
    assert main([*tune, "--allow-int8"]) == 0
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 1


def test_a_plan_queued_in_a_smaller_space_runs_as_planned_in_a_larger_one(tmp_path, capsys):
    """Plans queued without --allow-int8 (or --plugin-lib) lack those parameters; a tune whose space has them pins
    them to their defaults instead of letting the sampler choose, so the plan's trial is its own config."""
    small, large = SearchSpace("decoder"), SearchSpace("decoder", options=SpaceOptions(allow_int8=True))
    cfg = BuildConfig("decoder", fp16=True, layer_precision={"norm": "fp32"})
    params = small.to_params(cfg)
    added = large.unpinned(params)
    assert added == {"int8": False}            # the calibrator and INT8 group choices exist only with int8 on
    assert large.sample(optuna.trial.FixedTrial({**params, **added})) == small.sample(optuna.trial.FixedTrial(params))
    assert large.unpinned({**params, **added}) == {}

    work = tmp_path / "work"
    write_stand_ins(work, ("decoder",))
    common = ["--work-dir", str(work), "--model", "decoder"]
    assert main(["plan", *common, "--plan", "rules"]) == 0           # no --allow-int8: no int8 parameter
    worker = shlex.join([sys.executable, str(FAKE_WORKER)])
    assert main(["tune", *common, "--trials", "1", "--grid", "1x16", "--no-progress", "--worker-command", worker,
                 "--allow-int8"]) == 0
    err = capsys.readouterr().err
    assert "was queued without int8" in err and "pinned to their defaults" in err
    study = open_study(f"sqlite:///{work / 'study.db'}", "decoder", create=False)
    ran = study.get_trials(states=(TrialState.COMPLETE,))[0]
    assert ran.params["int8"] is False and ran.system_attrs["fixed_params"]["int8"] is False
    waiting = [t for t in study.get_trials(states=(TrialState.WAITING,)) if t.user_attrs.get("plan")]
    assert waiting and all(t.system_attrs["fixed_params"].get("int8") is False for t in waiting)
