"""The bisect and rules strategies: group order, the ladders and their reading (smallest Good N, the next
midpoint), the rule sets, plan bases, and plan -> tune -> precision with the fake worker."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from engine.config import BuildConfig
from engine.layer_groups import GROUPS
from search.cli import main
from search.errors import SearchError
from search.options import SpaceOptions
from search.plans import PlanBase, base_name, enqueue_plan, plan_configs, precision_report, resolve_base
from search.precision_strategies import (ALL_FP32, bisect_configs, bisect_next, bisect_report, group_order, ladder,
                                         rule_sets, rules_configs, rules_report, split_label)
from search.space import SearchSpace
from search.storage import open_study
from stand_ins import write_stand_ins

FAKE_WORKER = Path(__file__).with_name("fake_trial_worker.py")
ENC = "/encoder/encoders"


def _onnx(path, names):
    """An ONNX file whose nodes carry these names (Identity chain): all group_order reads."""
    import onnx
    from onnx import TensorProto, helper
    nodes = [helper.make_node("Identity", [f"t{i}"], [f"t{i + 1}"], name=n) for i, n in enumerate(names)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info(f"t{len(names)}", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_group_order_follows_the_graph_by_median_node(tmp_path):
    names = ["/encoder/embed/conv/Conv", f"{ENC}.1/self_attn/linear_pos/MatMul",      # hoisted: block 1 early
             f"{ENC}.0/norm_ff/Div", f"{ENC}.0/feed_forward/w_1/MatMul", f"{ENC}.0/self_attn/MatMul",
             f"{ENC}.0/self_attn/Softmax", f"{ENC}.1/norm_ff/Div", f"{ENC}.1/self_attn/linear_q/MatMul",
             f"{ENC}.1/self_attn/MatMul", "/encoder/after_norm/Div", "/encoder/Shape"]
    onnx = _onnx(tmp_path / "e.onnx", names)
    blocks = SearchSpace("encoder", options=SpaceOptions(group_granularity="block", num_blocks=2)).groups
    assert group_order("encoder", blocks, onnx) == [
        "subsampling", "block0.norm", "block0.feed_forward", "block0.attention", "block0.softmax", "block1.norm",
        "block1.attention", "norm"]                      # groups without a node are left out
    # plain kinds recur in every block: by their first node
    assert group_order("encoder", GROUPS["encoder"], onnx) == ["subsampling", "attention", "norm", "feed_forward",
                                                               "softmax"]
    # no readable model: the declared order, blocks in index order
    stand_in = tmp_path / "x.onnx"
    stand_in.write_bytes(b"not a model")
    declared = group_order("encoder", blocks, stand_in)
    assert declared[:7] == ["subsampling", "block0.norm", "block0.feed_forward", "block0.attention",
                            "block0.softmax", "block0.conv_module", "block1.norm"]
    assert declared[-1] == "conv_module" and len(declared) == len(blocks) - 2     # no block{i}.subsampling
    assert group_order("decoder", GROUPS["decoder"]) == ["embedding", "norm", "self_attention", "softmax",
                                                         "cross_attention", "feed_forward", "output"]


def test_ladder_doubles_to_every_group():
    assert ladder(6) == [1, 2, 4, 6] and ladder(8) == [1, 2, 4, 8] and ladder(78)[-2:] == [64, 78]
    assert ladder(1) == [1] and ladder(0) == []


def test_bisect_configs_pin_the_first_or_last_n_groups():
    space = SearchSpace("decoder")
    order = list(GROUPS["decoder"])
    base = BuildConfig("decoder", layout="per_batch", batch_buckets=[2, 4, 16])
    first = dict(bisect_configs(space, "first", order, base, "per_batch"))
    assert list(first) == ["bisect/first:1@per_batch", "bisect/first:2@per_batch", "bisect/first:4@per_batch",
                           f"{ALL_FP32}@per_batch"]
    cfg = first["bisect/first:2@per_batch"]
    assert {g for g, p in cfg.layer_precision.items() if p == "fp32"} == set(order[:2])
    assert cfg.fp16 and cfg.precision_constraints == "obey" and cfg.layout == "per_batch"
    assert cfg.batch_buckets == [2, 4, 16]
    last = dict(bisect_configs(space, "last", order))
    assert {g for g, p in last["bisect/last:4"].layer_precision.items() if p == "fp32"} == set(order[-4:])
    assert set(last[ALL_FP32].layer_precision.values()) == {"fp32"}
    for c in list(first.values()) + list(last.values()):
        space.to_params(c)
    with pytest.raises(ValueError, match="direction"):
        bisect_configs(space, "middle", order)


def test_rule_sets_per_model_and_their_variants():
    enc, dec = SearchSpace("encoder"), SearchSpace("decoder")
    assert [n for n, _ in rule_sets(enc)] == ["norms", "norms+softmax", "norms+softmax+attention"]
    assert [n for n, _ in rule_sets(dec)] == ["norms", "norms+softmax", "norms+softmax+output",
                                              "norms+softmax+output+attention"]
    configs = dict(rules_configs(dec))
    assert len(configs) == 8 and configs["rules/norms+softmax+output/prefer"].precision_constraints == "prefer"
    scoring = configs["rules/norms+softmax+output/obey"].layer_precision
    assert {g for g, p in scoring.items() if p == "fp32"} == {"norm", "softmax", "output"}
    assert not any(c.int8 for c in configs.values())
    q = SearchSpace("encoder", options=SpaceOptions(allow_int8=True))
    int8 = {k: c for k, c in rules_configs(q) if c.int8}
    assert set(int8) == {"rules/int8:norms+softmax/entropy2", "rules/int8:norms+softmax/minmax",
                         "rules/int8:norms+softmax+attention/entropy2", "rules/int8:norms+softmax+attention/minmax"}
    with_attention = int8["rules/int8:norms+softmax+attention/entropy2"].layer_precision
    assert with_attention["attention"] == "fp32" and with_attention["feed_forward"] == "int8"
    pins = int8["rules/int8:norms+softmax/minmax"].layer_precision
    assert pins == {"softmax": "fp32", "subsampling": "fp16", "attention": "fp16", "feed_forward": "int8",
                    "conv_module": "int8", "norm": "fp32"}
    assert int8["rules/int8:norms+softmax/minmax"].calibrator == "minmax"
    for c in list(configs.values()):
        dec.to_params(c)
    for c in int8.values():
        q.to_params(c)
    # block granularity: a rule pins its kind in every block and outside them
    blocks = SearchSpace("encoder", options=SpaceOptions(group_granularity="block", num_blocks=2))
    norms = dict(rules_configs(blocks))["rules/norms/obey"].layer_precision
    assert {g for g, p in norms.items() if p == "fp32"} == {"block0.norm", "block1.norm", "norm"}


def test_plan_base_seed_trial_and_yaml(tmp_path):
    space = SearchSpace("encoder", options=SpaceOptions(max_opt_level=2))
    assert resolve_base(space, None) == PlanBase()
    pb = resolve_base(space, "per_batch")
    assert pb.name == "per_batch" and pb.config.layout == "per_batch"
    sens = dict(plan_configs(space, "sensitivity", pb))
    cfg = sens["sensitivity/fp32:norm@per_batch"]
    assert cfg.layout == "per_batch" and cfg.opt_level == 2 and cfg.layer_precision["norm"] == "fp32"
    path = BuildConfig("encoder", layout="per_batch", opt_level=1).save(tmp_path / "mine.yaml")
    assert resolve_base(space, str(path)).name == "mine"
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs={"config_yaml": BuildConfig("encoder").to_yaml()}))
    assert resolve_base(space, "trial:0", study).name == "trial0"
    bad_bases = (("nope", "not a seed"), ("trial:7", "no such trial"), (str(tmp_path / "none.yaml"), "none.yaml"))
    for bad, match in bad_bases:
        with pytest.raises(SearchError, match=match):
            resolve_base(space, bad, study)
    assert split_label("bisect/first:4@per_batch") == ("bisect/first:4", "per_batch")
    assert [base_name(b) for b in (None, "per_batch", "trial:12", "cfg/mine.yaml")] == ["", "per_batch", "trial12",
                                                                                        "mine"]


def test_rules_get_plugin_backed_variants_where_the_space_has_our_plugins():
    from search.rewrites import registered_plugins

    dec = SearchSpace("decoder", plugins=registered_plugins("decoder"))
    configs = dict(rules_configs(dec, base_name="passes_fp32"))
    assert len(configs) == 8 + 4                         # every decoder rule set keeps norms
    norms = configs["rules/norms+plugins/obey@passes_fp32"]
    assert norms.plugins == ["wenet_layernorm_plugin"] and norms.precision_constraints == "obey"
    scoring = configs["rules/norms+softmax+output+plugins/obey@passes_fp32"]
    assert scoring.plugins == ["wenet_layernorm_plugin", "wenet_log_softmax_plugin"] and scoring.fp16
    assert {g for g, p in scoring.layer_precision.items() if p == "fp32"} == {"norm", "softmax", "output"}
    assert dec.to_params(scoring)["plugin.wenet_log_softmax_plugin"] is True      # the space can express it
    enc = dict(rules_configs(SearchSpace("encoder", plugins=registered_plugins("encoder"))))
    assert enc["rules/norms+plugins/obey"].plugins == ["wenet_layernorm_plugin"] and len(enc) == 6 + 3


def test_enqueue_fixes_int8_off_and_refuses_int8_without_allow(tmp_path):
    study = open_study(f"sqlite:///{tmp_path / 's.db'}", "decoder")
    space = SearchSpace("decoder")
    added = enqueue_plan(study, space, "rules", resolve_base(space, "per_batch"))
    assert added[0] == "rules/norms/obey@per_batch" and len(added) == 8
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert all(t.system_attrs["fixed_params"]["int8"] is False for t in waiting)
    assert enqueue_plan(study, space, "rules", resolve_base(space, "per_batch")) == []
    assert len(enqueue_plan(study, space, "rules")) == 8           # another base: its own labels
    from search.plans import enqueue_configs
    with pytest.raises(SearchError, match="need --allow-int8"):
        enqueue_configs(study, space, [("x", BuildConfig("decoder", fp16=True, int8=True))])


def _done(study, label, worst, latency, cfg):
    cases = [{"batch": 1, "length": 16, "latency_ms": latency, "good": worst < 1, "worst_ratio": worst}]
    study.add_trial(optuna.trial.create_trial(value=latency, user_attrs={
        "plan": label, "cases": cases, "latency_ms": {"1x16": latency}, "constraint": worst - 1,
        "config_yaml": cfg.to_yaml()}))


def test_bisect_report_finds_the_smallest_good_n_and_the_next_midpoint(tmp_path):
    space = SearchSpace("encoder", options=SpaceOptions(group_granularity="block", num_blocks=3))
    order = group_order("encoder", space.groups)                         # 3 blocks x 5 kinds + 6 = 21 groups
    study = open_study(f"sqlite:///{tmp_path / 's.db'}", "encoder")
    ladder_cfgs = dict(bisect_configs(space, "first", order, BuildConfig("encoder", layout="per_batch"), "pb"))
    ratios = {1: 1.8, 2: 1.6, 4: 1.3, 8: 1.1, 16: 0.9, 21: 0.5}
    for label, cfg in ladder_cfgs.items():
        n = len(order) if label.startswith(ALL_FP32) else int(label.split(":")[1].split("@")[0])
        _done(study, label, ratios[n], 10 + n, cfg)
    _done(study, "bisect/first:8", 0.1, 1, ladder_cfgs["bisect/first:8@pb"])      # another base: ignored
    rep = bisect_report(study, "first", len(order), "pb")
    assert [s["n"] for s in rep["steps"]] == [1, 2, 4, 8, 16, 21]
    assert rep["smallest_good_n"] == 16 and rep["next_n"] == 12
    label, cfg = bisect_next(study, space, order, "first", "pb")
    assert label == "bisect/first:12@pb" and cfg.layout == "per_batch"
    assert {g for g, p in cfg.layer_precision.items() if p == "fp32"} == set(order[:12])
    lines, _, _ = precision_report(study, space, None, "serving", base_name="pb", enqueue=True)
    assert any("smallest Good N: 16; next: 12" in ln for ln in lines)
    assert any("enqueued bisect/first:12@pb" in ln for ln in lines)
    assert bisect_report(study, "first", len(order), "pb")["next_n"] is None     # 12 is pending
    _done(study, "bisect/first:12@pb", 0.95, 22, cfg)
    again = bisect_report(study, "first", len(order), "pb")
    assert again["smallest_good_n"] == 12 and again["next_n"] == 10
    assert bisect_report(study, "last", len(order), "pb")["steps"][-1]["n"] == 21   # the shared all-FP32 end


def test_rules_report_orders_good_seeds_by_latency():
    study = optuna.create_study()
    cfg = BuildConfig("decoder", fp16=True)
    _done(study, "rules/norms/obey", 1.2, 5, cfg)
    _done(study, "rules/norms+softmax/obey", 0.9, 7, cfg)
    _done(study, "rules/norms+softmax/prefer", 0.8, 6, cfg)
    _done(study, "sensitivity/fp16/all", 2.0, 4, cfg)
    rows = rules_report(study)
    assert [r["label"] for r in rows] == ["rules/norms+softmax/prefer", "rules/norms+softmax/obey", "rules/norms/obey"]
    assert [r["good"] for r in rows] == [True, True, False]


def test_plan_tune_precision_cli_with_the_fake_worker(tmp_path, capsys):
    work = tmp_path / "work"
    write_stand_ins(work, ("decoder",))
    common = ["--work-dir", str(work), "--model", "decoder"]
    assert main(["plan", *common, "--plan", "bisect", "--base", "per_batch"]) == 0
    assert main(["plan", *common, "--plan", "rules", "--base", "per_batch"]) == 0
    out = capsys.readouterr().out
    assert "4 bisect trials enqueued (bisect/first:1@per_batch .. bisect/all_fp32@per_batch)" in out
    assert "12 rules trials enqueued" in out        # 8 + 4 backed by our plugins (registered here)
    worker = shlex.join([sys.executable, str(FAKE_WORKER)])
    assert main(["tune", *common, "--trials", "19", "--grid", "1x16", "--no-progress",
                 "--worker-command", worker]) == 0
    study = open_study(f"sqlite:///{work / 'study.db'}", "decoder", create=False)
    planned = [t for t in study.trials if t.user_attrs.get("plan")]
    assert len(planned) == 16 and all(t.state == TrialState.COMPLETE for t in planned)
    # the plan made the study, so the serving seeds (FP32, FP16, TF32 per_batch) ran first: the table's rows
    assert [t.user_attrs.get("seed") for t in study.trials[:3]] == ["per_batch", "per_batch_fp16", "per_batch_tf32"]
    assert all("layout: per_batch" in t.user_attrs["config_yaml"] for t in planned)
    capsys.readouterr()
    out_json = tmp_path / "precision.json"
    assert main(["precision", *common, "--base", "per_batch", "--json", str(out_json), "--gpu", "fake"]) == 0
    text = capsys.readouterr().out
    assert "bisect: 7 groups" in text and "smallest Good N: 1; next: None" in text     # the fake is always Good
    assert "rules/norms/obey@per_batch" in text and "best mixed" in text
    data = json.loads(out_json.read_text())
    assert data["gpu"] == "fake" and {r["precision"] for r in data["rows"]} == {"fp32", "tf32", "fp16", "mixed"}
    assert [s["precision"] for s in data["summary"]] == ["fp32", "tf32", "fp16", "mixed"]
    assert data["command"].startswith("python -m search precision --work-dir") and data["summary"][3]["feasible"]
    assert all(r["a0"] is not None and r["layout"].startswith("per_batch") for r in data["rows"])
    exact = tmp_path / "exact.json"          # one layout exactly, as the study labels it: the same rows here
    assert main(["precision", *common, "--base", "per_batch", "--layout", data["rows"][0]["layout"],
                 "--json", str(exact), "--gpu", "fake"]) == 0
    assert [s["trial"] for s in json.loads(exact.read_text())["summary"]] == [s["trial"] for s in data["summary"]]
    assert main(["sensitivity", *common, "--base", "per_batch"]) == 2      # no sensitivity plan on that base
