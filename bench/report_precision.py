"""README block and numbers of the precision plans run in the decoder serving study (H100): each planned
trial's errors per batch size, beside the seeds it is compared with, and the best engine per precision
(`search precision --json`, bench/results/precision-h100.json).

Per batch because in the per_batch layout every batch bucket is its own optimization profile, with its own
tactics: a mix can be Good in one profile and far off in another. Every number is read from a committed
bench/results file.
"""
from __future__ import annotations

from typing import Callable

from bench.report_data import Sources, main_study
from bench.report_registry import number, times
from bench.report_study_blocks import SSD
from bench.report_tables import table
from search.plans import batch_worst

PSV = "precision@h100"
PLAN_BASE = "per_batch_tf32"        # the seed the plans started from (host.sh precision-plans BASE)
REFERENCE_SEEDS = ("per_batch", "per_batch_tf32", "per_batch_fp16")


def plan_records(rec: dict, base: str = PLAN_BASE) -> list[dict]:
    """The export's reference seeds and the trials of plans on `base`, in trial order."""
    out = []
    for r in main_study(rec)["trials"]:
        ua = r.get("user_attrs") or {}
        if ua.get("seed") in REFERENCE_SEEDS or str(ua.get("plan", "")).endswith(f"@{base}"):
            out.append(r)
    return out


def worst_by_batch(r: dict) -> dict[int, float]:
    """batch -> the worst metric/threshold ratio over that batch's measured cases, of an exported trial."""
    return batch_worst((r.get("user_attrs") or {}).get("cases") or [])


def _worst_over(r: dict, batches: tuple[int, ...]) -> float:
    """The worst ratio of an exported trial over those batches."""
    return max(v for b, v in worst_by_batch(r).items() if b in batches)


def plugins_on(r: dict) -> str:
    """The plugin rewrites a trial ran with ("-": none; WAITING: what it was enqueued with so far)."""
    on = sorted(k.removeprefix("plugin.") for k, v in (r.get("params") or {}).items() if k.startswith("plugin.") and v)
    return ", ".join(on) or "-"


def _sum_ms(r: dict) -> float | None:
    lat = (r.get("user_attrs") or {}).get("latency_ms")
    return sum(lat.values()) if isinstance(lat, dict) and lat else None


def plans_block(src: Sources, key: str = SSD) -> str:
    rec = src.data.get(key)
    if rec is None:
        return f"_Not made: {src.missing(key)}._"
    recs = plan_records(rec)
    batches = sorted({b for r in recs for b in worst_by_batch(r)})
    rows = []
    for r in recs:
        ua = r.get("user_attrs") or {}
        worst, cases = worst_by_batch(r), ua.get("cases") or []
        total = _sum_ms(r)
        rows.append([r["number"], f"`{ua.get('plan') or ua.get('seed')}`", r["state"], plugins_on(r),
                     "-" if total is None else f"{total:.2f}",
                     *("-" if b not in worst else f"{worst[b]:.3g}" for b in batches),
                     f"{sum(1 for c in cases if c.get('good'))}/{len(cases)}" if cases else "-",
                     "-" if ua.get("build_s") is None else f"{ua['build_s']:.0f}",
                     "-" if ua.get("workers_per_gpu") is None else ua["workers_per_gpu"],
                     f"`{(r.get('fail_reason') or '')[:90]}`" if r.get("fail_reason") else ""])
    date, _ = src.meta(key)
    return (f"`{src.name(key)}` (`python3 -m search export`, {date}): the `{PLAN_BASE}`-based plan trials of "
            "the decoder serving study and the seeds they are compared with:\n\n"
            + table(["trial", "seed / plan", "state", "plugins", "sum ms", *(f"worst ratio, batch {b}" for b in batches),
                     "Good cases", "build s", "workers", "fail reason (shortened)"], rows)
            + "\n\n`sum ms`: the serving harness's latencies summed over the 12 shapes (a Bad engine's objective "
              "adds a penalty, not shown here). A worst ratio above 1 is Bad. Batch 1 runs in the profile of "
              "bucket 2 where the layout's buckets are [2,4,16]. `plugins`: the plugin rewrites the trial ran with. "
              "The plans were queued without our plugin library, so their `wenet_*` plugins were the sampler's "
              "choice, not the plan's (`tune` now pins a dimension a plan lacks to its default).")


def _record(plan: str) -> Callable[[Sources], dict]:
    return lambda s: next(r for r in plan_records(s.data[SSD]) if (r.get("user_attrs") or {}).get("plan") == plan)


def _seed(label: str) -> Callable[[Sources], dict]:
    return lambda s: [r for r in plan_records(s.data[SSD]) if (r.get("user_attrs") or {}).get("seed") == label][-1]


def _summary(precision: str) -> Callable[[Sources], dict]:
    return lambda s: next(x for x in s.data[PSV]["summary"] if x["precision"] == precision)


def _batch_worst(get: Callable[[Sources], dict], batches: tuple[int, ...]) -> Callable[[Sources], str]:
    return lambda s: f"{_worst_over(get(s), batches):.3g}"


_ALL16, _FF32, _OUT32 = ("sensitivity/fp16/all@per_batch_tf32", "sensitivity/fp32:feed_forward@per_batch_tf32",
                         "sensitivity/fp32:output@per_batch_tf32")
_RULE_GOOD = "rules/norms+softmax+output/obey@per_batch_tf32"
_RULE_ATTN = "rules/norms+softmax+output+attention/obey@per_batch_tf32"
_SOFT32, _EMB32, _NORM32 = (f"sensitivity/fp32:{g}@per_batch_tf32" for g in ("softmax", "embedding", "norm"))
# (name, plan, batches): the worst ratio of that plan's trial over those batches
for _name, _plan, _batches in (("all16.b4-16", _ALL16, (4, 16)), ("ff32.b1", _FF32, (1,)),
                               ("ff32.b4-16", _FF32, (4, 16)), ("out32.b1", _OUT32, (1,)),
                               ("out32.b4-16", _OUT32, (4, 16)),
                               ("rule-good.worst", _RULE_GOOD, (1, 4, 16)), ("soft32.worst", _SOFT32, (1, 4, 16)),
                               ("emb32.worst", _EMB32, (1, 4, 16)), ("norm32.worst", _NORM32, (1, 4, 16)),
                               ("attn-rule.b1", _RULE_ATTN, (1,)), ("attn-rule.b4-16", _RULE_ATTN, (4, 16))):
    number(f"psv.{_name}", SSD, f"`{_plan}`: its worst ratio at batch {', '.join(map(str, _batches))}",
           _batch_worst(_record(_plan), _batches))
number("psv.fp16-seed.b1", SSD, "the per_batch_fp16 seed: its worst ratio at batch 1",
       _batch_worst(_seed("per_batch_fp16"), (1,)))
number("psv.rule-good.sum", SSD, f"`{_RULE_GOOD}`: its latency sum (ms)",
       lambda s: f"{_sum_ms(_record(_RULE_GOOD)(s)):.2f} ms")
number("psv.tf32.sum", SSD, "the per_batch_tf32 seed: its latency sum (ms)",
       lambda s: f"{_sum_ms(_seed('per_batch_tf32')(s)):.2f} ms")
_CLASS_NAMES = {"fp32": "(strict) FP32", "tf32": "TF32", "fp16": "all-FP16", "mixed": "mixed", "int8": "INT8-mixed"}
for _fast, _slow in (("mixed", "fp32"), ("mixed", "tf32"), ("tf32", "fp32"), ("fp16", "tf32"), ("int8", "fp32"),
                     ("int8", "tf32")):
    number(f"psv.{_fast}-vs-{_slow}", PSV,
           f"precision-h100: the best {_CLASS_NAMES[_fast]} engine's speed-up over the best {_CLASS_NAMES[_slow]} one",
           lambda s, f=_fast, w=_slow: times(_summary(w)(s)["latency_sum_ms"] / _summary(f)(s)["latency_sum_ms"]))
number("psv.int8.sum", PSV, "precision-h100: the best INT8-mixed engine's latency sum (ms)",
       lambda s: f"{_summary('int8')(s)['latency_sum_ms']:.2f} ms")
number("psv.int8.worst", PSV, "precision-h100: the best INT8-mixed engine's worst ratio",
       lambda s: f"{_summary('int8')(s)['worst_ratio']:.3g}")
number("psv.int8.trial", PSV, "precision-h100: the best INT8-mixed engine's trial",
       lambda s: str(_summary("int8")(s)["trial"]))


def _no_output_pin(s: Sources) -> list[dict]:
    """The COMPLETE plan trials that leave the output group in FP16 (the error's source when it is)."""
    return [r for r in plan_records(s.data[SSD]) if r["state"] == "COMPLETE" and (r.get("user_attrs") or {}).get("plan")
            and "output" not in r["user_attrs"]["plan"]]


def _range_b4_16(lsm_on: bool) -> Callable[[Sources], str]:
    """The range of their worst ratios at batches 4 and 16, with the log-softmax plugin on or off."""
    def value(s: Sources) -> str:
        ws = [_worst_over(r, (4, 16)) for r in _no_output_pin(s)
              if bool((r.get("params") or {}).get("plugin.wenet_log_softmax_plugin")) == lsm_on]
        return f"{min(ws):.3g}-{max(ws):.3g} ({len(ws)} trial{'' if len(ws) == 1 else 's'})"
    return value


number("psv.lsm-on.b4-16", SSD, "plan trials without an output pin, log-softmax plugin on: worst ratio range at "
       "batches 4 and 16", _range_b4_16(True))
number("psv.lsm-off.b4-16", SSD, "the same with the log-softmax plugin off", _range_b4_16(False))


def _ln_or_norm32(r: dict) -> bool:
    """Our LayerNorm plugin on, or the norms pinned FP32 by the plan."""
    return bool((r.get("params") or {}).get("plugin.wenet_layernorm_plugin")) or "norm" in r["user_attrs"]["plan"]


def _b1(with_either: bool) -> Callable[[Sources], str]:
    """Batch 1's worst ratios of the no-output-pin plan trials with (the highest) or without (each) either."""
    def value(s: Sources) -> str:
        ws = [worst_by_batch(r)[1] for r in _no_output_pin(s) if _ln_or_norm32(r) == with_either]
        return f"{max(ws):.3g}" if with_either else ", ".join(f"{w:.3g}" for w in sorted(ws))
    return value


number("psv.ln-or-norm.b1", SSD, "no-output-pin plan trials with our LayerNorm plugin or FP32 norms: the highest "
       "worst ratio at batch 1", _b1(True))
number("psv.neither.b1", SSD, "those with neither: each one's worst ratio at batch 1", _b1(False))
