"""Inline numbers of the run that put every engine beside torch.compile (bench/results/layouts-<gpu>.json, its
torch rows merged in): the best engines of the run against torch.compile (max-autotune and reduce-overhead),
shape by shape, and sums of named configurations (the roles' sums and ratios are bench.report_numbers_layouts'); and two sums of the eighth session's shorter run
(layouts-torch-compile-<gpu>.json), whose naive engine ran on another host.
Rows are grouped and the best engines picked by bench.report_data (configs, pick)."""
from __future__ import annotations

from bench.report_data import NAIVE, pick
from bench.report_registry import ms, number
from bench.report_torch_blocks import TC, TORCH_MA, TORCH_RO, run_configs, wins

TC8 = "layouts-torch-compile"      # the eighth session's run: naive, TF32 per_batch, the studies' bests


def _groups(s, model: str, key: str = TC):
    """label -> Config of one model in the run."""
    return run_configs(s, key)[model]


def _sum(s, model: str, label: str, key: str = TC) -> float:
    return _groups(s, model, key)[label].sum_ms


def _best(s, model: str, harness: str) -> str:
    best = pick(_groups(s, model))[f"best {harness}"]
    if best is None:
        raise ValueError(f"no all-Good {harness} engine of the {model} in the run")
    return best.label


def _wins(s, model: str, harness: str, torch_label: str) -> str:
    g = _groups(s, model)
    if torch_label not in g:
        return "no shape (none compiled)"
    w, n, _ = wins(g[_best(s, model, harness)], g[torch_label])
    return f"{w} of {n}"


def _fastest(c) -> str:
    bs, sl = min(c.cases, key=lambda k: c.cases[k]["latency_ms"])
    return f"{c.cases[(bs, sl)]['latency_ms']:.2f} ms at {bs}x{sl}"


def _ma_compile_s(s) -> float:
    """Mean seconds of a max-autotune compile in the run (a shape whose graph existed takes well under 10 s)."""
    slow = [r["build_s"] for cfgs in run_configs(s).values() if TORCH_MA in cfgs
            for r in cfgs[TORCH_MA].cases.values() if (r.get("build_s") or 0.0) >= 10.0]
    if not slow:
        raise ValueError("no max-autotune compile time in the run")
    return sum(slow) / len(slow)


for _m, _k in (("encoder", "enc"), ("decoder", "dec")):
    for _h, _t, _name in (("serving", TORCH_MA, "ma-wins"), ("serving", TORCH_RO, "ro-wins"),
                          ("contest", TORCH_MA, "contest-ma-wins")):
        number(f"tc.{_k}.{_name}", TC, f"shapes where the {_m}'s fastest all-Good {_h} engine beats `{_t}`, of "
               "those both ran", lambda s, m=_m, h=_h, t=_t: _wins(s, m, h, t))
number("tc.ma.compile-s", TC, "mean seconds of a max-autotune compile (a shape that compiled) in the run",
       lambda s: f"{_ma_compile_s(s):.0f} s")
# one label's sum: key -> (file, model, label, decimals)
for _key, (_file, _m, _label, _d) in {
        "tc.dec.serving-best.sum": (TC, "decoder", "serving-best serving", 2),
        "tc.dec.per-batch-tf32.sum": (TC, "decoder", "per_batch tf32 serving", 2),
        "tc.dec.contest-best.sum": (TC, "decoder", "contest-best contest", 2),
        "tc.enc.naive.sum": (TC, "encoder", NAIVE, 1),
        "tc8.enc.naive.sum": (TC8, "encoder", NAIVE, 1),
        "tc8.enc.per-batch-tf32.sum": (TC8, "encoder", "per_batch tf32 serving", 2)}.items():
    number(_key, _file, f"the sum over the run's grid of `{_label}` ({_m})",
           lambda s, f=_file, m=_m, lab=_label, d=_d: ms(_sum(s, m, lab, f), d))
# issue 9's serving target for the encoder, 0.05x the naive sum, as an average per shape of the run's grid
number("tc.enc.target-avg", TC, "0.05 x the run's naive encoder sum / its shape count: issue 9's target per shape",
       lambda s: ms(0.05 * _sum(s, "encoder", NAIVE) / len(_groups(s, "encoder")[NAIVE].cases), 2))
number("tc.enc.per-batch-tf32.fastest", TC, "the encoder per_batch TF32 serving engine's fastest shape in the run",
       lambda s: _fastest(_groups(s, "encoder")["per_batch tf32 serving"]))
