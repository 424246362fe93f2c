"""Inline numbers of the run that put every engine beside torch.compile (bench/results/layouts-<gpu>.json, its
torch rows merged in): the best engines of the run against torch.compile (max-autotune and reduce-overhead),
shape by shape, and sums of named configurations (the roles' sums and ratios are bench.report_numbers_layouts'); and two sums of the eighth session's shorter run
(layouts-torch-compile-<gpu>.json), whose naive engine ran on another host.
Rows are grouped and the best engines picked by bench.report_data (configs, pick)."""
from __future__ import annotations

from bench.report_data import H100, NAIVE, pick
from bench.report_numbers_layouts import role, vs_naive
from bench.report_registry import ms, number, times
from bench.report_torch_blocks import TC, TORCH_MA, TORCH_RO, run_configs, wins

TC8 = "layouts-torch-compile"      # the eighth session's run: naive, TF32 per_batch, the studies' bests


def _groups(s, model: str, key: str = TC):
    """label -> Config of one model in the run."""
    return run_configs(s, key)[model]


def _sum(s, model: str, label: str, key: str = TC) -> float:
    return _groups(s, model, key)[label].sum_ms


def _best(s, model: str, harness: str, key: str = TC) -> str:
    best = pick(_groups(s, model, key))[f"best {harness}"]
    if best is None:
        raise ValueError(f"no all-Good {harness} engine of the {model} in the run")
    return best.label


def _wins(s, model: str, harness: str, torch_label: str, key: str = TC) -> str:
    g = _groups(s, model, key)
    if torch_label not in g:
        return "no shape (none compiled)"
    w, n, _ = wins(g[_best(s, model, harness, key)], g[torch_label])
    return f"{w} of {n}"


def _fp16_good(s, model: str) -> str:
    g = [c for c in _groups(s, model, H100).values() if "fp16" in c.label.split() and not c.is_torch]
    if not g:
        raise ValueError(f"no FP16 TensorRT engine of the {model} in {s.name(H100)}")
    return f"{max(c.good for c in g)} of {max(len(c.cases) for c in g)} ({len(g)} engine{'s' * (len(g) != 1)})"


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


for _file, _p in ((TC, "tc"), (H100, "h100")):
    for _m, _k in (("encoder", "enc"), ("decoder", "dec")):
        for _h, _t, _name in (("serving", TORCH_MA, "ma-wins"), ("serving", TORCH_RO, "ro-wins"),
                              ("contest", TORCH_MA, "contest-ma-wins")):
            number(f"{_p}.{_k}.{_name}", _file, f"shapes where the {_m}'s fastest all-Good {_h} engine beats `{_t}`, "
                   "of those both ran", lambda s, m=_m, h=_h, t=_t, f=_file: _wins(s, m, h, t, f))
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
for _file, _p in ((TC, "tc"), (H100, "h100")):
    number(f"{_p}.enc.target-avg", _file, "0.05 x the run's naive encoder sum / its shape count: issue 9's target "
           "per shape", lambda s, f=_file: ms(0.05 * _sum(s, "encoder", NAIVE, f)
                                              / len(_groups(s, "encoder", f)[NAIVE].cases), 2))
    number(f"{_p}.enc.per-batch-tf32.fastest", _file, "the encoder per_batch TF32 serving engine's fastest shape in "
           "the run", lambda s, f=_file: _fastest(_groups(s, "encoder", f)["per_batch tf32 serving"]))

# the H100 run's roles (best engine of each harness), as report_numbers_layouts gives them for the H200 file
for _m, _k in (("encoder", "enc"), ("decoder", "dec")):
    for _h in ("serving", "contest"):
        _pre = f"h100.{_k}.best-{_h}"
        number(f"{_pre}.vs-naive", H100, f"{_m}: time of the run's best {_h} engine / its naive engine's",
               lambda s, m=_m, h=_h: times(vs_naive(s, m, role(s, m, f"best {h}", (H100,)), (H100,))))
        number(f"{_pre}.sum", H100, f"{_m}: sum over the grid of the run's best {_h} engine",
               lambda s, m=_m, h=_h: ms(role(s, m, f"best {h}", (H100,)).sum_ms, 2))
        number(f"{_pre}.label", H100, f"{_m}: the label of the run's best {_h} engine",
               lambda s, m=_m, h=_h: role(s, m, f"best {h}", (H100,)).label)
    number(f"h100.{_k}.naive.sum", H100, f"{_m}: sum over the grid of `{NAIVE}` in the run",
           lambda s, m=_m: ms(_sum(s, m, NAIVE, H100), 1))
    number(f"h100.{_k}.fp16-good", H100, f"{_m}: the most Good shapes of any all-FP16 engine of the run, of its grid",
           lambda s, m=_m: _fp16_good(s, m))
# issue 9's ratio targets (to the naive engine's sum): the run's best engine's ratio / the target
for _k, _m, _h, _target in (("enc.best-serving", "encoder", "serving", 0.05),
                            ("dec.best-serving", "decoder", "serving", 0.4),
                            ("enc.best-contest", "encoder", "contest", 0.33)):
    number(f"h100.{_k}.vs-target", H100, f"{_m}: the run's best {_h} engine's ratio to naive / issue 9's {_target}x",
           lambda s, m=_m, h=_h, x=_target: times(vs_naive(s, m, role(s, m, f"best {h}", (H100,)), (H100,)) / x, 2))
number("h100.build-phase", H100, "wall time of the run's build phase (every engine, --parallel at a time)",
       lambda s: f"{s.data[H100]['build_phase_s']:.0f} s")
number("h100.parallel", H100, "builds the run made at a time (settings.parallel)",
       lambda s: str(s.data[H100]["settings"]["parallel"]))
