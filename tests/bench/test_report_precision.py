"""bench.report: the precision table with a TF32 row, and the precision plans' errors per batch size.

Small synthetic files: a `search precision --json` summary with and without the tf32 class, and a serving
study export whose plan trials are Good in some batch buckets and far off in another.
"""
from __future__ import annotations

from pathlib import Path

from bench.report_sources import Sources

SHAPES = [(1, 16), (4, 64), (16, 256)]
BASE = "per_batch_tf32"


def sources(**data) -> Sources:
    return Sources(Path("."), "h200", {k: v for k, v in data.items()})


def summary(precision: str, trial: int, ms: float, worst: float, fp32_ms: float, tf32_ms: float | None) -> dict:
    return {"model": "decoder", "precision": precision, "label": f"{precision} per_batch trial {trial}", "trial": trial,
            "latency_sum_ms": ms, "worst_ratio": worst, "feasible": worst <= 1, "speedup_vs_fp32": fp32_ms / ms,
            "speedup_vs_tf32": tf32_ms / ms if tf32_ms else None, "layer_precision": {}, "precision_counts": None,
            "honoured": None}


def precision_file(with_tf32: bool) -> dict:
    tf32 = 4.0 if with_tf32 else None
    rows = [summary("fp32", 0, 10.0, 0.01, 10.0, tf32), summary("mixed", 3, 3.2, 0.2, 10.0, tf32)]
    if with_tf32:
        rows.insert(1, summary("tf32", 1, 4.0, 0.06, 10.0, tf32))
    return {"date": "2026-12-07", "command": "python -m search precision", "rows": [], "summary": rows}


def test_the_precision_table_shows_tf32_where_the_file_has_it():
    from bench.report_blocks import precision
    text = precision(sources(**{"precision@h100": precision_file(True)}), "precision@h100", with_plugins=False)
    dec = text.split("decoder:")[1]
    assert "| speed-up vs FP32 | speed-up vs TF32 |" in dec
    assert "| tf32 | study trial 1 | `tf32 per_batch trial 1` | 4.00 | 2.50x | 1.00x | 0.06 |" in dec
    assert "| mixed | study trial 3 | `mixed per_batch trial 3` | 3.20 | 3.12x | 1.25x | 0.2 |" in dec
    assert "| int8 | study (" in dec and "plugins bench" not in text
    old = precision(sources(precision=precision_file(False)))      # a file from before the class: no tf32 row
    assert "| tf32 |" not in old and "speed-up vs TF32" not in old and "| mixed | study trial 3 |" in old


def case(bs: int, sl: int, worst: float) -> dict:
    return {"batch": bs, "length": sl, "latency_ms": 1.0, "good": worst <= 1, "worst_ratio": worst}


def record(n: int, worsts: list[float], seed: str | None = None, plan: str | None = None, state="COMPLETE") -> dict:
    ua = {"cases": [case(bs, sl, w) for (bs, sl), w in zip(SHAPES, worsts)],
          "latency_ms": {f"{bs}x{sl}": 1.0 + n / 10 for bs, sl in SHAPES}, "build_s": 80.0 + n}
    ua.update({"seed": seed} if seed else {}, **({"plan": plan} if plan else {}))
    return {"number": n, "state": state, "value": 3.0, "user_attrs": ua}


def serving_export() -> dict:
    trials = [record(0, [0.0, 0.0, 0.0], seed="baseline"),                        # not a reference seed: left out
              record(1, [0.1, 0.1, 0.1], seed="per_batch"),
              record(2, [0.07, 0.07, 0.07], seed=BASE),
              record(3, [173.0, 1.12, 1.11], seed="per_batch_fp16"),
              record(4, [1.11, 1.11, 1.10], plan=f"sensitivity/fp16/all@{BASE}"),
              record(5, [5.0, 0.26, 0.25], plan=f"sensitivity/fp32:output@{BASE}"),
              record(6, [0.2, 0.2, 0.2], plan="rules/norms/obey@trial:13"),         # another base: left out
              {"number": 7, "state": "FAIL", "value": None, "fail_reason": "error: build: no implementation",
               "user_attrs": {"plan": f"sensitivity/fp32:self_attention@{BASE}", "build_s": 16.0}}]
    return {"exported": "2026-12-07T13:42:19+00:00", "studies": [{"study": "s", "model": "decoder",
                                                                   "harness": "serving", "trials": trials}]}


def test_the_plans_block_lists_the_base_plans_and_reference_seeds_per_batch():
    from bench.report_precision import plans_block, worst_by_batch
    st = serving_export()
    st["studies"][0]["trials"][5]["params"] = {"plugin.wenet_log_softmax_plugin": True,
                                               "plugin.wenet_layernorm_plugin": False}
    text = plans_block(sources(**{"study-decoder-serving": st}))
    assert "| plugins | sum ms | worst ratio, batch 1 | worst ratio, batch 4 | worst ratio, batch 16 |" in text
    assert ("| 5 | `sensitivity/fp32:output@per_batch_tf32` | COMPLETE | wenet_log_softmax_plugin | 4.50 | 5 | 0.26 | "
            "0.25 | 2/3 | 85 |") in text                         # the plugins it ran with (sampled, in the H100 sweep)
    assert "| 7 | `sensitivity/fp32:self_attention@per_batch_tf32` | FAIL | - | - | - | - | - | - | 16 |" in text
    assert "`baseline`" not in text and "trial:13" not in text
    assert worst_by_batch(serving_export()["studies"][0]["trials"][3]) == {1: 173.0, 4: 1.12, 16: 1.11}
    assert plans_block(sources()).startswith("_Not made:")


def test_the_precision_numbers_read_the_batches_they_name():
    from bench.report_numbers import NUMBERS
    st = serving_export()
    trials = st["studies"][0]["trials"]
    trials.append(record(8, [1.0, 1.01, 1.01], plan=f"sensitivity/fp32:feed_forward@{BASE}"))
    src = sources(**{"study-decoder-serving": st, "precision@h100": precision_file(True)})
    assert NUMBERS["psv.out32.b1"].fn(src) == "5" and NUMBERS["psv.out32.b4-16"].fn(src) == "0.26"
    trials[4]["params"], trials[-1]["params"] = {}, {"plugin.wenet_log_softmax_plugin": True}   # all-FP16, FF pin
    assert NUMBERS["psv.lsm-on.b4-16"].fn(src) == "1.01-1.01 (1 trial)"     # the output pin (trial 5) is left out
    assert NUMBERS["psv.lsm-off.b4-16"].fn(src) == "1.11-1.11 (1 trial)"
    assert NUMBERS["psv.neither.b1"].fn(src) == "1, 1.11"                   # no LayerNorm plugin, no norms pin
    assert NUMBERS["psv.ff32.b4-16"].fn(src) == "1.01" and NUMBERS["psv.fp16-seed.b1"].fn(src) == "173"
    assert NUMBERS["psv.tf32.sum"].fn(src) == "3.60 ms"               # 3 shapes x (1.0 + 2/10)
    assert NUMBERS["psv.mixed-vs-fp32"].fn(src) == "3.12x" and NUMBERS["psv.mixed-vs-tf32"].fn(src) == "1.25x"
    assert NUMBERS["psv.tf32-vs-fp32"].fn(src) == "2.50x"
