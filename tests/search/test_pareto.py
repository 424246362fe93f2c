"""The latency / worst-ratio Pareto front and the best engine per precision, on synthetic in-memory studies;
the `pareto` verb with and without matplotlib."""
from __future__ import annotations

import json
import math
import sys

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from engine.config import BuildConfig
from search.cli import main
from search.pareto import (Point, best_per_precision, pareto_front, precision_class, precision_rows, trial_latency_ms,
                           trial_points, trial_worst_ratio)
from search.storage import open_study

SHAPES = ((1, 16), (16, 1024))


def add_trial(study, cfg, ratios, latencies, label=None, *, trial_dir=None, with_attrs=True, value=None):
    """A COMPLETE trial as the objective stores it (cases, latency_ms per shape, constraint, config_yaml)."""
    cases = [{"batch": b, "length": t, "latency_ms": lat, "good": r < 1, "worst_ratio": r}
             for (b, t), r, lat in zip(SHAPES, ratios, latencies)]
    worst = max(ratios)
    attrs = {"config_yaml": cfg.to_yaml(), "constraint": worst - 1 if worst < 1 else max(worst - 1, 1e-9)}
    if with_attrs:
        attrs.update(cases=cases, latency_ms={f"{b}x{t}": lat for (b, t), lat in zip(SHAPES, latencies)})
    if label:
        attrs["plan"] = label
    if trial_dir:
        attrs["trial_dir"] = str(trial_dir)
    penalised = sum(lat * (1 if r < 1 else 2 * r) for r, lat in zip(ratios, latencies))
    study.add_trial(optuna.trial.create_trial(
        params={"fp16": cfg.fp16}, distributions={"fp16": CategoricalDistribution((False, True))},
        value=penalised if value is None else value, user_attrs=attrs))
    return study.trials[-1].number


def pt(n, lat, worst):
    return Point(n, lat, worst, "", "fp16", "single", lat)


def test_front_keeps_the_non_dominated_points_fastest_first():
    pts = [pt(0, 10, 0.5), pt(1, 5, 2.0), pt(2, 7, 0.9), pt(3, 8, 0.9), pt(4, 12, 0.4), pt(5, 7, 0.9),
           pt(6, 5, 2.5), pt(7, 20, 0.4), pt(8, 4, math.inf)]
    front = pareto_front(pts)
    # 3 is slower than 2 at the same ratio, 6 and 7 are dominated; 2 and 5 are identical: both stay
    assert [p.trial for p in front] == [8, 1, 2, 5, 0, 4]
    assert pareto_front([]) == []
    assert [p.feasible for p in front] == [False, False, True, True, True, True]


def test_points_from_a_study_read_latency_and_worst_ratio():
    study = optuna.create_study()
    add_trial(study, BuildConfig("encoder"), [0.2, 0.3], [4.0, 6.0])
    add_trial(study, BuildConfig("encoder", fp16=True), [1.5, 0.5], [2.0, 3.0], "sensitivity/fp16/all")
    # no per-case attrs: latency from the value, ratio from the constraint
    add_trial(study, BuildConfig("encoder", fp16=True, layer_precision={"norm": "fp32"}), [0.7, 0.8], [1, 1],
              with_attrs=False, value=7.5)
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    t = study.trials
    assert trial_latency_ms(t[0]) == 10.0 and trial_worst_ratio(t[0]) == 0.3
    assert trial_latency_ms(t[2]) == 7.5 and trial_worst_ratio(t[2]) == pytest.approx(0.8)
    pts = trial_points(study)
    assert [(p.trial, p.precision, p.label) for p in pts] == [(0, "fp32", ""), (1, "fp16", "sensitivity/fp16/all"),
                                                            (2, "mixed", "")]
    assert [p.trial for p in pareto_front(pts)] == [1, 2, 0]
    assert not pts[1].feasible and pts[2].feasible


def test_precision_class():
    assert precision_class(BuildConfig("decoder")) == "fp32"
    assert precision_class(BuildConfig("decoder", tf32=True)) == "tf32"     # TF32 is not FP32's precision
    assert precision_class(BuildConfig("decoder", fp16=True, tf32=True, layer_precision={"norm": "fp32"})) == "mixed"
    assert precision_class(BuildConfig("decoder", fp16=True, layer_precision={"norm": "fp16"})) == "fp16"
    assert precision_class(BuildConfig("decoder", fp16=True, layer_precision={"norm": "fp32"})) == "mixed"
    assert precision_class(BuildConfig("decoder", fp16=True, int8=True)) == "int8"
    assert precision_class(None) == "?"


def _result_json(trial_dir, ratios, latencies):
    trial_dir.mkdir(parents=True)
    cases = [{"batch": b, "length": t, "latency_ms": lat, "good": r < 1, "worst_ratio": r, "a0": 1e-3, "r0": r * 2e-3,
              "a1": 0.0, "r1": 0.0, "profile": 1, "cuda_graph": True}
             for (b, t), r, lat in zip(SHAPES, ratios, latencies)]
    (trial_dir / "result.json").write_text(json.dumps({"cases": cases, "build_s": 12.5,
                                                       "build_report": {"tensorrt": "8.6.0"}}))


def test_best_engine_per_precision_on_one_layout(tmp_path):
    study = optuna.create_study()
    study.set_user_attr("model", "encoder")
    pb = dict(layout="per_batch", batch_buckets=[1, 4, 16])
    fp32 = BuildConfig("encoder", **pb)
    fp16 = BuildConfig("encoder", fp16=True, **pb)
    mixed = BuildConfig("encoder", fp16=True, layer_precision={"norm": "fp32", "softmax": "fp16"}, **pb)
    int8 = BuildConfig("encoder", fp16=True, int8=True, layer_precision={"feed_forward": "int8"}, **pb)
    add_trial(study, BuildConfig("encoder"), [0.1, 0.1], [20, 200])                      # 0: single fp32
    _result_json(tmp_path / "1", [0.1, 0.2], [5, 45])
    add_trial(study, fp32, [0.1, 0.2], [5, 45], "per_batch", trial_dir=tmp_path / "1")    # 1
    add_trial(study, fp16, [1.2, 1.5], [2, 17])                                          # 2: Bad
    add_trial(study, mixed, [0.9, 0.95], [3, 22], "rules/norms/obey")                    # 3
    add_trial(study, mixed, [0.5, 0.6], [3, 30])                                         # 4: Good, slower
    add_trial(study, int8, [1.1, 0.9], [2, 12])                                          # 5: Bad, the only int8
    add_trial(study, BuildConfig("encoder", fp16=True), [0.9, 0.9], [1, 1])              # 6: single layout
    add_trial(study, BuildConfig("encoder", tf32=True, **pb), [0.2, 0.3], [4, 36])       # 7: TF32, Good
    layout, chosen = best_per_precision(study, "per_batch")
    assert layout == "per_batch" and {k: p.trial for k, p in chosen.items()} == {"fp32": 1, "tf32": 7, "fp16": 2,
                                                                                "mixed": 3, "int8": 5}
    assert best_per_precision(study)[0] == "single"            # the best lower-precision trial's layout (6)
    rows, summary = precision_rows(study, "serving", "per_batch[1,4,16]")
    assert [s["precision"] for s in summary] == ["fp32", "tf32", "fp16", "mixed", "int8"]
    assert len(rows) == 5 * len(SHAPES)
    need = {"model", "label", "harness", "layout", "precision", "cuda_graph", "bs", "sl", "latency_ms", "good",
            "a0", "r0", "a1", "r1", "build_s"}
    assert all(need <= set(r) for r in rows)
    first = rows[0]
    assert first["model"] == "encoder" and first["harness"] == "serving" and first["layout"] == "per_batch[1,4,16]"
    assert first["r0"] == pytest.approx(2e-4) and first["build_s"] == 12.5 and first["cuda_graph"] is True
    assert rows[2]["r0"] is None                               # no result.json: the study's cases only
    mixed_row = summary[3]
    assert mixed_row["feasible"] and mixed_row["speedup_vs_fp32"] == pytest.approx(50 / 25)
    assert mixed_row["speedup_vs_tf32"] == pytest.approx(40 / 25) and summary[1]["speedup_vs_tf32"] == 1.0
    assert mixed_row["layer_precision"] == {"norm": "fp32", "softmax": "fp16"}
    assert "rules/norms/obey" in mixed_row["label"]
    assert summary[0]["tensorrt"] == "8.6.0" and summary[0]["metrics"] == "result.json"


def test_precision_rows_find_the_trials_of_a_study_brought_from_another_host(tmp_path):
    """The stored trial_dir is the GPU host's path; the trials/ brought beside the study are read."""
    study = optuna.create_study()
    study.set_user_attr("model", "encoder")
    here = tmp_path / "work" / "trials" / "wenet-encoder-serving" / "00000"
    _result_json(here, [0.1, 0.2], [5, 45])
    int8 = BuildConfig("encoder", fp16=True, int8=True, layer_precision={"feed_forward": "int8"})
    result = json.loads((here / "result.json").read_text())
    (here / "result.json").write_text(json.dumps({**result, "honoured": {"honoured": False, "groups": {}}}))
    add_trial(study, int8, [0.1, 0.2], [5, 45], trial_dir="/root/work/trials/wenet-encoder-serving/00000")
    rows, summary = precision_rows(study, "serving")
    assert rows[0]["r0"] is None and summary[0]["metrics"] == "study (no per-metric errors)"
    rows, summary = precision_rows(study, "serving", work_dir=tmp_path / "work")
    assert rows[0]["r0"] == pytest.approx(2e-4) and summary[0]["tensorrt"] == "8.6.0"
    assert summary[0]["honoured"] is False          # the worker's verdict: no layers.json came back


def _cli_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = open_study(url, "decoder", "serving")
    add_trial(study, BuildConfig("decoder"), [0.1, 0.2], [10, 30])
    add_trial(study, BuildConfig("decoder", fp16=True), [1.1, 1.2], [4, 9])
    add_trial(study, BuildConfig("decoder", fp16=True, layer_precision={"output": "fp32"}), [0.5, 0.9], [5, 11])
    add_trial(study, BuildConfig("decoder", fp16=True, layer_precision={"norm": "fp32"}), [0.5, 1.3], [6, 12])
    return url


def test_pareto_verb_table_json_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    url = _cli_study(tmp_path)
    png, out_json = tmp_path / "p.png", tmp_path / "p.json"
    assert main(["pareto", "--storage", url, "--model", "decoder", "--out", str(png), "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "wenet-decoder-serving: 3 of 4 complete trials on the latency / worst-ratio front" in text
    assert png.stat().st_size > 0
    data = json.loads(out_json.read_text())
    fronts = data["fronts"]
    assert [p["trial"] for p in fronts[0]["front"]] == [1, 2, 0] and fronts[0]["points"] == 4
    # the bench/results format: the front trials per shape, every convention key there
    assert data["gpu"] == "unknown" and data["command"].startswith("python -m search pareto")
    assert [(r["trial"], r["bs"]) for r in data["rows"]] == [(1, 1), (1, 16), (2, 1), (2, 16), (0, 1), (0, 16)]
    need = {"model", "label", "harness", "layout", "precision", "cuda_graph", "bs", "sl", "latency_ms", "good",
            "a0", "r0", "a1", "r1", "build_s"}
    assert all(need <= set(r) for r in data["rows"]) and data["rows"][0]["label"] == "front trial 1"
    assert {r["harness"] for r in data["rows"]} == {"serving"} and data["rows"][0]["precision"] == "fp16"


def test_pareto_without_matplotlib_prints_the_table(tmp_path, capsys, monkeypatch):
    url = _cli_study(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)          # import matplotlib -> ImportError
    png = tmp_path / "p.png"
    assert main(["pareto", "--storage", url, "--model", "decoder", "--out", str(png)]) == 0
    out = capsys.readouterr()
    assert "on the latency / worst-ratio front" in out.out and "the plot needs matplotlib" in out.err
    assert not png.exists()
