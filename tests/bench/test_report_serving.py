"""bench.report: result files pinned to the GPU they ran on, and the decoder serving study's per-shape table.

A FILES entry may name the GPU slug its file was measured on (the serving study ran on an H100): that
key is read from that slug's file whatever --gpu says, the rest follow --gpu. The per-shape table is
built from a small synthetic export: seed columns picked by their `seed` label, the best by value.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.report_sources import FILES, ReportInputError, Sources, file_name, load_sources

SHAPES = [(1, 16), (4, 64), (16, 256)]


def case(bs: int, sl: int, ms: float, good: bool = True) -> dict:
    return {"batch": bs, "length": sl, "latency_ms": ms, "good": good, "a0": 1e-3, "r0": 1e-5}


def trial(n: int, per_shape: list[float], seed: str | None = None, feasible: bool = True, bad=()) -> dict:
    ua = {"cases": [case(bs, sl, ms, (bs, sl) not in bad) for (bs, sl), ms in zip(SHAPES, per_shape)]}
    if seed:
        ua["seed"] = seed
    return {"number": n, "state": "COMPLETE", "value": sum(per_shape) * (1 if feasible else 10),
            "feasible": feasible, "constraint": -0.5 if feasible else 0.5, "user_attrs": ua}


def export() -> dict:
    """Seeds out of the table's column order (per_batch_tf32 before per_batch), a faster infeasible trial,
    and the best feasible trial one the sampler chose (no label)."""
    return {"exported": "2026-12-07T03:01:10+00:00", "optuna": "5.1.0", "studies": [{
        "study": "s-serving", "model": "decoder", "harness": "serving", "user_attrs": {"sampler": "tpe"},
        "trials": [trial(0, [1.0, 2.0, 4.0], "baseline"),
                   trial(1, [0.5, 1.0, 2.0], "per_batch_tf32", bad=[(4, 64)]),
                   trial(2, [1.0, 1.5, 3.5], "per_batch"),
                   trial(3, [0.2, 0.4, 0.8], feasible=False),              # fastest, but infeasible
                   trial(4, [0.4, 0.9, 1.7]),                              # the best feasible
                   trial(5, [0.5, 1.0, 1.8])]}]}


def contest_eval(per_shape: list[float]) -> dict:
    return {"date": "2026-12-07T03:02:47+00:00", "harness": "contest", "models": {"decoder": {
        "objective": sum(per_shape), "cases": [case(bs, sl, ms) for (bs, sl), ms in zip(SHAPES, per_shape)]}}}


def sources(**data) -> Sources:
    return Sources(Path("."), "h200", {k.replace("_", "-"): v for k, v in data.items()})


# --- a key pinned to its GPU ---------------------------------------------------------------------------

def test_the_serving_files_are_pinned_to_the_h100():
    for key in ("study-decoder-serving", "reproduce-decoder-serving", "reproduce-eval-decoder-serving",
                "reproduce-eval-decoder-serving-contest"):
        assert FILES[key].gpu == "h100" and file_name(key, "h200") == f"{key}-h100.json"
    assert FILES["layouts"].gpu is None and file_name("layouts", "h200") == "layouts-h200.json"
    suffix, read = FILES["plugins-gputests"][:2]            # still a tuple: (suffix, reader[, gpu])
    assert suffix == ".log" and callable(read)


def test_a_pinned_key_is_read_from_its_gpus_file_the_rest_follow_gpu(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    mine, other = export(), export()
    other["studies"][0]["study"] = "wrong gpu"
    (res / "study-decoder-serving-h100.json").write_text(json.dumps(mine))
    (res / "study-decoder-serving-h200.json").write_text(json.dumps(other))     # not read: the key is pinned
    (res / "study-decoder-contest-h200.json").write_text(json.dumps(other))
    (res / "study-decoder-contest-h100.json").write_text(json.dumps(mine))      # not read: --gpu is h200
    src = load_sources(res, "h200")
    assert src.data["study-decoder-serving"]["studies"][0]["study"] == "s-serving"
    assert src.data["study-decoder-contest"]["studies"][0]["study"] == "wrong gpu"
    assert src.name("study-decoder-serving") == "bench/results/study-decoder-serving-h100.json"
    assert src.name("study-decoder-contest") == "bench/results/study-decoder-contest-h200.json"
    assert src.gpu_of("study-decoder-serving") == "h100" and src.gpu_of("study-decoder-contest") == "h200"
    assert src.missing("reproduce-decoder-serving") == "bench/results/reproduce-decoder-serving-h100.json is missing"


def test_only_pinned_files_are_no_files_of_that_gpu(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    (res / "study-decoder-serving-h100.json").write_text(json.dumps(export()))
    with pytest.raises(ReportInputError, match="no result files for gpu 'a30'"):
        load_sources(res, "a30")


# --- the per-shape table --------------------------------------------------------------------------------

def rows_of(text: str) -> dict[str, list[str]]:
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in ln.strip("|").split("|")] for ln in lines)}


def test_serving_shapes_picks_seeds_by_label_best_by_value_and_marks_bad():
    from bench.report_study_blocks import serving_shapes
    rep = {"compare": [{"model": "decoder", "study": "s-serving", "trial": 4}]}
    text = serving_shapes(sources(study_decoder_serving=export(), reproduce_decoder_serving=rep,
                                  reproduce_eval_decoder_serving_contest=contest_eval([0.8, 1.2, 2.0])))
    rows = rows_of(text)
    assert rows["shape (batch x frames)"] == ["baseline (trial 0)", "per_batch (trial 2)", "per_batch_tf32 (trial 1)",
                                              "trial 4 (best)", "best, rebuilt, contest harness"]
    assert list(rows)[1:] == ["1x16", "4x64", "16x256", "sum", "vs baseline"]
    assert rows["1x16"] == ["1.000", "1.000", "0.500", "0.400", "0.800"]
    assert rows["4x64"] == ["2.000", "1.500", "1.000*", "0.900", "1.200"]       # the tf32 seed's Bad case
    assert rows["sum"] == ["7.000", "6.000", "3.500", "3.000", "4.000"]
    assert rows["vs baseline"] == ["1.00x", "0.86x", "0.50x", "0.43x", "-"]     # no ratio across harnesses
    first = text.splitlines()[0]
    assert "`bench/results/study-decoder-serving-h100.json`" in first and "one GPU (H100)" in first
    assert "`bench/results/reproduce-eval-decoder-serving-contest-h100.json`" in first and "same host" in first


def test_serving_shapes_says_which_trial_was_rebuilt_and_what_is_missing():
    from bench.report_study_blocks import serving_shapes
    ex = export()
    ex["studies"][0]["trials"] = [t for t in ex["studies"][0]["trials"] if t["number"] != 2]     # no per_batch
    rep = {"compare": [{"model": "decoder", "study": "s-serving", "trial": 5}]}
    text = serving_shapes(sources(study_decoder_serving=ex, reproduce_decoder_serving=rep,
                                  reproduce_eval_decoder_serving_contest=contest_eval([0.8, 1.2, 2.0])))
    head = rows_of(text)["shape (batch x frames)"]
    assert head == ["baseline (trial 0)", "per_batch_tf32 (trial 1)", "trial 4 (best)", "trial 5, rebuilt, contest harness"]
    assert "No trial of the seed `per_batch` in the export." in text
    # the best is a seed: its column says so, no column twice; without the contest file the block says so
    ex["studies"][0]["trials"] = [t for t in ex["studies"][0]["trials"] if t["number"] in (0, 1)]
    text = serving_shapes(sources(study_decoder_serving=ex))
    assert rows_of(text)["shape (batch x frames)"] == ["baseline (trial 0)", "per_batch_tf32 (trial 1, best)"]
    assert "reproduce-eval-decoder-serving-contest-h100.json is missing" in text
    assert serving_shapes(sources()) == "_Not made: bench/results/study-decoder-serving-h100.json is missing._"


def test_serving_numbers_come_from_the_export_and_the_contest_eval():
    from bench.report_numbers import value
    src = sources(study_decoder_serving=export(), reproduce_eval_decoder_serving_contest=contest_eval([0.8, 1.2, 2.0]))
    got = {k: value(src, f"sstudy.{k}") for k in ("trials", "complete", "best", "best-ms", "baseline-ms",
                                                 "best-vs-baseline", "tf32-vs-fp32", "best-vs-fp32", "best-vs-tf32",
                                                 "best-contest-ms")}
    assert got == {"trials": "6", "complete": "6", "best": "trial 4", "best-ms": "3.00 ms", "baseline-ms": "7.00 ms",
                   "best-vs-baseline": "0.43x", "tf32-vs-fp32": "0.58x", "best-vs-fp32": "2.00x",
                   "best-vs-tf32": "1.17x", "best-contest-ms": "4.00 ms"}
    del src.data["reproduce-eval-decoder-serving-contest"]["models"]["decoder"]["objective"]
    assert value(src, "sstudy.best-contest-ms") == "4.00 ms"                  # the sum of its cases instead


# --- the workers-per-GPU A/B ---------------------------------------------------------------------------

def workers_ab_file() -> dict:
    return {"date": "2026-12-07T12:32:42+00:00", "gpu": "NVIDIA H100", "command": "python3 bench/study_throughput.py",
            "studies": [{"study": "s", "tuner_run": "a", "workers_per_gpu": 3, "finished": 3, "states": {"FAIL": 3},
                         "most_at_once": 3, "span_s": 241.7, "complete_per_min": 0.0, "median_build_s": 224.4},
                        {"study": "s", "tuner_run": "b", "workers_per_gpu": 1, "finished": 2,
                         "states": {"PRUNED": 1, "COMPLETE": 1}, "most_at_once": 1, "span_s": 100.0,
                         "complete_per_min": 0.6, "median_build_s": 50.0, "median_eval_s": 4.3}]}


def test_workers_ab_block_and_numbers_read_the_runs():
    from bench.report_numbers import NUMBERS
    from bench.report_study_blocks import workers_ab
    src = sources(workers_ab=workers_ab_file())
    text = workers_ab(src)
    assert "| `s` run `a` | 3 | 3 | FAIL 3 | 3 | 242 | 0.00 | - | 224 | - | - |" in text
    assert "| `s` run `b` | 1 | 2 | COMPLETE 1, PRUNED 1 | 1 | 100 | 0.60 | - | 50 | 4 | - |" in text
    assert workers_ab(sources()).startswith("_Not made: bench/results/workers-ab-h100.json is missing")
    assert NUMBERS["wab.w3.complete"].fn(src) == "0" and NUMBERS["wab.w1.complete-per-min"].fn(src) == "0.60"
    assert NUMBERS["wab.w3.median-build"].fn(src) == "224 s"


def test_the_multi_worker_numbers_read_the_study_export():
    from bench.report_numbers import NUMBERS
    st = export()
    trials = st["studies"][0]["trials"]
    trials[4]["user_attrs"].update(workers_per_gpu=1, build_s=128.8, tuner_run="b")     # the A/B's 1-worker run
    trials[4]["params"] = {"fp16": True}
    trials.append({"number": 6, "state": "FAIL", "value": None, "user_attrs": {"workers_per_gpu": 3},
                   "fail_reason": "trial ran past its timeout of 240 s; worker killed"})
    later = trial(7, [0.5, 1.0, 1.8])                      # a later 1-worker run's FP16 trial: not that A/B's
    later["user_attrs"].update(workers_per_gpu=1, build_s=99.0, tuner_run="c")
    later["params"] = {"fp16": True}
    trials.append(later)
    src = sources(study_decoder_serving=st, workers_ab=workers_ab_file())
    assert NUMBERS["wab.alone-fp16-build"].fn(src) == "129 s (trial 4)"
    assert NUMBERS["wab.timeout"].fn(src) == "240 s"
