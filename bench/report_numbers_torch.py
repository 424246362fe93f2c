"""Inline numbers of the torch.compile run (bench/results/layouts-torch-compile-<gpu>.json): the best
engines of the run against its naive engine and against torch.compile max-autotune, shape by shape."""
from __future__ import annotations

from bench.report_registry import ms, number, times
from bench.report_torch_blocks import NAIVE, TC, TORCH_MA, best_engine, by_label, shapes_of, wins


def _groups(s, model: str):
    return by_label(s.data[TC], model)


def _sum(s, model: str, label: str) -> float:
    return sum(c["latency_ms"] for c in _groups(s, model)[label].values())


def _best(s, model: str, harness: str) -> str:
    g = _groups(s, model)
    label = best_engine(g, harness, len(shapes_of(g)))
    if label is None:
        raise ValueError(f"no all-Good {harness} engine of the {model} in the torch.compile run")
    return label


def _vs_naive(s, model: str, harness: str) -> str:
    return times(_sum(s, model, _best(s, model, harness)) / _sum(s, model, NAIVE))


def _ma_wins(s, model: str) -> str:
    g = _groups(s, model)
    if TORCH_MA not in g:
        return "no shape (none compiled)"
    w, n, _ = wins(g[_best(s, model, "serving")], g[TORCH_MA])
    return f"{w} of {n}"


def _ma_shapes(s, model: str) -> str:
    return str(len(_groups(s, model).get(TORCH_MA, {})))


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
number("tc.enc.per-batch-tf32.sum", TC, "the encoder per_batch TF32 serving sum of the run",
       lambda s: ms(_sum(s, "encoder", "per_batch tf32 serving")))
number("tc.dec.serving-best.sum", TC, "the decoder serving study's frozen best, serving harness, in the run",
       lambda s: ms(_sum(s, "decoder", "serving-best serving"), 2))
number("tc.dec.per-batch-tf32.sum", TC, "the decoder per_batch TF32 serving sum of the run",
       lambda s: ms(_sum(s, "decoder", "per_batch tf32 serving"), 2))


def _ma_compile_s(s, cheap: bool) -> float:
    """max-autotune's compile seconds per shape of the run: the compiles (slow) or the recordings (cheap)."""
    xs = sorted(r["build_s"] for r in s.data[TC].get("rows") or []
                if r.get("label") == TORCH_MA and r.get("build_s") is not None)
    slow = [x for x in xs if x >= 10.0]
    return (max(x for x in xs if x < 10.0) if cheap else sum(slow) / len(slow))


def _deadline(s) -> str:
    errs = [e.get("error", "") for e in s.data[TC].get("torch_errors") or []]
    got = next((e.split("deadline ")[1].split(" passed")[0] for e in errs if "compile deadline" in e), None)
    if got is None:
        raise ValueError("no torch row of the run was skipped by the compile deadline")
    return got


number("tc.ma.compile-s", TC, "mean seconds of a max-autotune compile (a shape that compiled) in the run",
       lambda s: f"{_ma_compile_s(s, False):.0f} s")
number("tc.ma.record-s", TC, "the most seconds a shape of an existing max-autotune graph took (CUDA graph only)",
       lambda s: f"{_ma_compile_s(s, True):.1f} s")
number("tc.compile-deadline", TC, "torch_baselines' --compile-deadline-s in the run, from its skipped rows",
       lambda s: _deadline(s))
number("tc.dec.contest-best.sum", TC, "the decoder contest study's frozen best (trial 50), contest harness, in the run",
       lambda s: ms(_sum(s, "decoder", "contest-best contest"), 2))
number("tc.dec.per-batch-tf32-contest.sum", TC, "the decoder per_batch TF32 engine in the contest harness, in the run",
       lambda s: ms(_sum(s, "decoder", "per_batch tf32 contest"), 2))
# issue 9's serving target for the encoder, 0.05x the naive sum, as an average per shape of the run's grid
number("tc.enc.target-avg", TC, "0.05 x the run's naive encoder sum / its shape count: issue 9's target per shape",
       lambda s: ms(0.05 * _sum(s, "encoder", NAIVE) / len(_groups(s, "encoder")[NAIVE]), 2))
number("tc.enc.per-batch-tf32.fastest", TC, "the encoder per_batch TF32 serving engine's fastest shape in the run",
       lambda s: (lambda cs: f"{min(cs.values(), key=lambda c: c['latency_ms'])['latency_ms']:.2f} ms at "
                  f"{min(cs, key=lambda k: cs[k]['latency_ms'])[0]}x{min(cs, key=lambda k: cs[k]['latency_ms'])[1]}")(
                      _groups(s, "encoder")["per_batch tf32 serving"]))
