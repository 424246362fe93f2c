"""bench.report_torch_blocks: the torch.compile run's per-shape table, from a small synthetic layouts file.

The best engine of a harness is the TensorRT label with the least sum among those Good at every shape
(a faster label with a Bad case or a missing shape is passed over); the verdict counts the shapes where
it beats torch.compile, naming the others.
"""
from __future__ import annotations

from pathlib import Path

from bench.report_data import NAIVE, pick
from bench.report_sources import Sources
from bench.report_torch_blocks import TC, TORCH_MA, TORCH_RO, run_configs, torch_compile_shapes, wins

SHAPES = [(1, 16), (4, 64), (16, 256)]


def rows(label: str, harness: str, per_shape: list[float | None], bad=()) -> list[dict]:
    return [{"model": "decoder", "label": label, "harness": harness, "bs": bs, "sl": sl, "latency_ms": ms,
             "good": (bs, sl) not in bad} for (bs, sl), ms in zip(SHAPES, per_shape) if ms is not None]


def layouts_file() -> dict:
    return {"date": "2026-12-08T04:10:00+00:00", "command": "python3.10 bench/layouts.py --work /w", "torch": "2.11.0",
            "rows": rows(NAIVE, "contest", [1.0, 2.0, 4.0])
            + rows("per_batch tf32 contest", "contest", [0.9, 1.8, 3.0])
            + rows("fast-but-bad serving", "serving", [0.1, 0.1, 0.1], bad=[(4, 64)])
            + rows("partial serving", "serving", [0.1, None, 0.1])
            + rows("per_batch tf32 serving", "serving", [0.3, 0.6, 1.5])
            + rows(TORCH_MA, "torch", [0.5, 0.5, 2.0])
            + rows(TORCH_RO, "torch", [0.2, 0.7, 2.5]),
            "torch_errors": []}


def groups() -> dict:
    return run_configs(Sources(Path("."), "h200", {TC: layouts_file()}))["decoder"]


def test_best_engine_is_all_good_and_complete():
    roles = pick(groups())
    assert roles["best serving"].label == "per_batch tf32 serving"
    assert roles["best contest"].label == "per_batch tf32 contest"
    assert roles["torch.compile"].label == TORCH_MA                         # the faster compile, as Good
    assert pick({k: v for k, v in groups().items() if "serving" not in k})["best serving"] is None


def test_wins_counts_and_names_the_lost_shapes():
    g = groups()
    assert wins(g["per_batch tf32 serving"], g[TORCH_MA]) == (2, 3, ["4x64"])
    assert wins(g["per_batch tf32 serving"], g[TORCH_RO]) == (2, 3, ["1x16"])


def test_the_block_shows_columns_sums_and_verdicts():
    text = torch_compile_shapes(Sources(Path("."), "h100", {TC: layouts_file()}))
    assert "`bench/results/layouts-h100.json`" in text and "H100" in text
    assert "best serving: per_batch tf32 serving" in text
    assert "| sum | 7.000 | 5.700 | 2.400 | 3.400 | 3.000 |" in text
    assert "| vs naive fp32 contest | 1.00x | 0.81x | 0.34x | 0.49x | 0.43x |" in text
    assert f"best serving engine `per_batch tf32 serving` faster than `{TORCH_MA}` at 2 of 3 shapes (not at 4x64)" \
        in text
    assert "fast-but-bad" not in text and "partial serving" not in text


def test_the_block_says_what_is_missing():
    src = Sources(Path("."), "h200", {TC: None})
    assert torch_compile_shapes(src) == "_Not made: bench/results/layouts-h200.json is missing._"
    no_ma = layouts_file()
    no_ma["rows"] = [r for r in no_ma["rows"] if r["label"] != TORCH_MA]
    text = torch_compile_shapes(Sources(Path("."), "h200", {TC: no_ma}))
    assert f"No row of `{TORCH_MA}` in the file." in text


def test_inline_numbers_of_the_run():
    from bench.report_numbers import value
    from bench.report_numbers_torch import _best

    rec = layouts_file()
    for r, s in zip([r for r in rec["rows"] if r["label"] == TORCH_MA], (240.0, 0.2, 200.0)):
        r["build_s"] = s
    src = Sources(Path("."), "h200", {TC: rec, "torch-baselines": {"rows": []}})
    assert _best(src, "decoder", "serving") == "per_batch tf32 serving"
    assert value(src, "layouts.dec.best-serving.vs-naive") == "0.34x"     # the role numbers read the same run
    assert value(src, "layouts.dec.best-contest.label") == "per_batch tf32 contest"
    assert value(src, "tc.dec.ma-wins") == "2 of 3" and value(src, "tc.dec.ro-wins") == "2 of 3"
    assert value(src, "tc.dec.contest-ma-wins") == "0 of 3"
    assert value(src, "tc.ma.compile-s") == "220 s"           # the two compiles; the 0.2 s CUDA-graph shape is not one
    assert value(src, "tc.dec.per-batch-tf32.sum") == "2.40 ms"
    assert value(Sources(Path("."), "h200", {TC: None}), "tc.dec.ma-wins").startswith(
        "[not made: bench/results/layouts-h200.json is missing")
    # the eighth session's shorter run is its own file
    assert value(Sources(Path("."), "h200", {TC: rec, "layouts-torch-compile": None}),
                 "tc8.enc.naive.sum").startswith("[not made: bench/results/layouts-torch-compile-h200.json is missing")


def test_every_configuration_figure_has_a_panel_per_harness_and_each_configuration_once():
    from bench.report_specs import latency_all

    spec, why = latency_all(Sources(Path("."), "h200", {"layouts": layouts_file(), "torch-baselines": None}))
    assert why is None
    assert [(p["model"], p["harness"]) for p in spec["panels"]] == [
        ("decoder", "contest"), ("decoder", "serving"), ("decoder", "torch")]
    labels = [s["label"] for p in spec["panels"] for s in p["series"]]
    assert sorted(labels) == sorted({r["label"] for r in layouts_file()["rows"]})
    partial = next(s for p in spec["panels"] for s in p["series"] if s["label"] == "partial serving")
    assert partial["latency_ms"] == [0.1, None, 0.1]                  # a shape it lacks stays a gap
    bad = next(s for p in spec["panels"] for s in p["series"] if s["label"] == "fast-but-bad serving")
    assert bad["good"] == [True, False, True]
    assert latency_all(Sources(Path("."), "h200", {"layouts": None}))[0] is None


def test_the_h100_run_is_its_own_file_and_numbers():
    """The tenth session's run (an H100) is read as layouts-h100.json beside the H200 layouts file, whatever
    --gpu says, and its numbers (roles, ratio to issue 9's targets, FP16 Good counts) come from it alone."""
    from bench.report_data import H100
    from bench.report_numbers import value
    from bench.report_sources import file_name
    from bench.report_specs import latency_all

    assert file_name(H100, "h200") == "layouts-h100.json" and file_name("layouts", "h200") == "layouts-h200.json"
    rec = layouts_file()
    rec["rows"] += rows("naive fp16 contest", "contest", [0.5, 0.5, 0.5], bad=[(1, 16), (4, 64)])
    rec.update(build_phase_s=539.9, settings={"parallel": 5})
    src = Sources(Path("."), "h200", {H100: rec, TC: None})
    assert value(src, "h100.dec.best-serving.label") == "per_batch tf32 serving"
    assert value(src, "h100.dec.best-serving.vs-naive") == "0.34x"
    assert value(src, "h100.dec.best-serving.vs-target") == "0.86x"          # 0.343x / 0.4x
    assert value(src, "h100.dec.best-contest.sum") == "5.70 ms"
    assert value(src, "h100.dec.ma-wins") == "2 of 3"
    assert value(src, "h100.dec.fp16-good") == "1 of 3 (1 engine)"
    assert value(src, "h100.build-phase") == "540 s" and value(src, "h100.parallel") == "5"
    assert value(src, "tc.dec.ma-wins").startswith("[not made: bench/results/layouts-h200.json is missing")
    spec, _ = latency_all(src, (H100,))
    assert "H100" in spec["title"] and spec["sources"] == ["bench/results/layouts-h100.json"]
