"""Inline numbers of the torch.compile run (bench/results/layouts-torch-compile-<gpu>.json): the best
engines of the run against its naive engine and against torch.compile max-autotune, shape by shape.
Rows are grouped and the best engines picked by bench.report_data (configs, pick)."""
from __future__ import annotations

from bench.report_data import NAIVE, pick
from bench.report_registry import ms, number, times
from bench.report_torch_blocks import TC, TORCH_MA, run_configs, wins


def _groups(s, model: str):
    """label -> Config of one model in the run."""
    return run_configs(s)[model]


def _sum(s, model: str, label: str) -> float:
    return _groups(s, model)[label].sum_ms


def _best(s, model: str, harness: str) -> str:
    best = pick(_groups(s, model))[f"best {harness}"]
    if best is None:
        raise ValueError(f"no all-Good {harness} engine of the {model} in the torch.compile run")
    return best.label


def _vs_naive(s, model: str, harness: str) -> str:
    return times(_sum(s, model, _best(s, model, harness)) / _sum(s, model, NAIVE))


def _ma_wins(s, model: str) -> str:
    g = _groups(s, model)
    if TORCH_MA not in g:
        return "no shape (none compiled)"
    w, n, _ = wins(g[_best(s, model, "serving")], g[TORCH_MA])
    return f"{w} of {n}"


def _ma_shapes(s, model: str) -> str:
    g = _groups(s, model)
    return str(len(g[TORCH_MA].cases) if TORCH_MA in g else 0)


def _fastest(c) -> str:
    bs, sl = min(c.cases, key=lambda k: c.cases[k]["latency_ms"])
    return f"{c.cases[(bs, sl)]['latency_ms']:.2f} ms at {bs}x{sl}"


def _ma_compile_s(s, cheap: bool) -> float:
    """max-autotune's compile seconds per shape of the run: the compiles (slow) or the recordings (cheap)."""
    xs = sorted(r["build_s"] for cfgs in run_configs(s).values() if TORCH_MA in cfgs
                for r in cfgs[TORCH_MA].cases.values() if r.get("build_s") is not None)
    slow = [x for x in xs if x >= 10.0]
    return (max(x for x in xs if x < 10.0) if cheap else sum(slow) / len(slow))


def _deadline(s) -> str:
    errs = [e.get("error", "") for e in s.data[TC].get("torch_errors") or []]
    got = next((e.split("deadline ")[1].split(" passed")[0] for e in errs if "compile deadline" in e), None)
    if got is None:
        raise ValueError("no torch row of the run was skipped by the compile deadline")
    return got


for _m, _k in (("encoder", "enc"), ("decoder", "dec")):
    number(f"tc.{_k}.best-serving.vs-naive", TC, f"the {_m}'s fastest all-Good serving engine of the torch.compile "
           "run: its sum / the run's naive FP32 contest sum", lambda s, m=_m: _vs_naive(s, m, "serving"))
    number(f"tc.{_k}.best-contest.vs-naive", TC, f"the {_m}'s fastest all-Good contest-harness engine of the run: "
           "its sum / the run's naive FP32 contest sum", lambda s, m=_m: _vs_naive(s, m, "contest"))
    number(f"tc.{_k}.ma-shapes", TC, f"shapes of the {_m} torch.compile max-autotune timed in the run",
           lambda s, m=_m: _ma_shapes(s, m))
number("tc.dec.best-contest", TC, "the decoder's fastest all-Good contest-harness engine of the run",
       lambda s: _best(s, "decoder", "contest"))
number("tc.enc.ma-wins", TC, "shapes where the encoder's best serving engine beats max-autotune, of those both ran",
       lambda s: _ma_wins(s, "encoder"))
number("tc.ma.compile-s", TC, "mean seconds of a max-autotune compile (a shape that compiled) in the run",
       lambda s: f"{_ma_compile_s(s, False):.0f} s")
number("tc.ma.record-s", TC, "the most seconds a shape of an existing max-autotune graph took (CUDA graph only)",
       lambda s: f"{_ma_compile_s(s, True):.1f} s")
number("tc.compile-deadline", TC, "torch_baselines' --compile-deadline-s in the run, from its skipped rows", _deadline)
# one label's sum of the run: key -> (model, label, decimals)
for _key, (_m, _label, _d) in {
        "tc.enc.per-batch-tf32.sum": ("encoder", "per_batch tf32 serving", 1),
        "tc.dec.serving-best.sum": ("decoder", "serving-best serving", 2),
        "tc.dec.per-batch-tf32.sum": ("decoder", "per_batch tf32 serving", 2),
        "tc.dec.contest-best.sum": ("decoder", "contest-best contest", 2),
        "tc.dec.per-batch-tf32-contest.sum": ("decoder", "per_batch tf32 contest", 2)}.items():
    number(_key, TC, f"the sum over the run's grid of `{_label}` ({_m})",
           lambda s, m=_m, lab=_label, d=_d: ms(_sum(s, m, lab), d))
# issue 9's serving target for the encoder, 0.05x the naive sum, as an average per shape of the run's grid
number("tc.enc.target-avg", TC, "0.05 x the run's naive encoder sum / its shape count: issue 9's target per shape",
       lambda s: ms(0.05 * _sum(s, "encoder", NAIVE) / len(_groups(s, "encoder")[NAIVE].cases), 2))
number("tc.enc.per-batch-tf32.fastest", TC, "the encoder per_batch TF32 serving engine's fastest shape in the run",
       lambda s: _fastest(_groups(s, "encoder")["per_batch tf32 serving"]))
