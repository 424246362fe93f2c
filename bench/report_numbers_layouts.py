"""README's inline numbers from the layouts, torch, diagnosis, older-study and plugins result files."""
from __future__ import annotations

import statistics

from bench.report_data import BENCH, Config, Sources, configs, pick, shape_key, time_ratio
from bench.report_registry import ms, number, pct, sci, span, times
from bench.report_sources import ReportInputError
from scoring.metrics import rules


# --- lookups ----------------------------------------------------------------------------------------
NAIVE = "naive fp32 contest"
FDS_OFF = "single+passes fds_off fp32 contest"


def cfg(src: Sources, model: str, label: str, keys: tuple[str, ...] = BENCH) -> Config:
    """One configuration of the layouts run in keys[0] (default: the layouts file with the torch baselines)."""
    c = configs(src, keys)[model].get(label)
    if c is None:
        raise ReportInputError(f"{src.name(keys[0])}: no {model} configuration '{label}'")
    return c


def role(src: Sources, model: str, name: str, keys: tuple[str, ...] = BENCH) -> Config:
    c = pick(configs(src, keys)[model])[name]
    if c is None:
        raise ReportInputError(f"{src.name(keys[0])}: no {model} configuration for the role '{name}'")
    return c


def vs_naive(src: Sources, model: str, c: Config, keys: tuple[str, ...] = BENCH) -> float:
    r, _ = time_ratio(c, cfg(src, model, NAIVE, keys))
    if r is None:
        raise ReportInputError(f"{src.name(keys[0])}: '{c.label}' shares no shape with '{NAIVE}'")
    return r


def case(c: Config, shape: str) -> dict:
    bs, sl = (int(v) for v in shape.split("x"))
    if (bs, sl) not in c.cases:
        raise ReportInputError(f"'{c.label}' has no {shape} row")
    return c.cases[(bs, sl)]


def threshold(model: str, metric: str) -> float:
    """The contest's threshold of a0/r0/a1/r1 (scoring.metrics.rules)."""
    rule = rules(model)[int(metric[1])]
    return rule.max_abs if metric[0] == "a" else rule.max_rel


def profile(src: Sources, key: str) -> dict:
    p = (src.data["layouts"].get("layer_profiles") or {}).get(key)
    if p is None:
        raise ReportInputError(f"{src.name('layouts')}: no layer profile '{key}'")
    return p


def conv_nodes(p: dict) -> list[float]:
    return [t["ms"] for t in p["top"] if "/conv_module/" in t["layer"]]


def layout_fp32(src: Sources, model: str, harness: str) -> list[Config]:
    """The model's FP32 TensorRT engines of one harness that differ only in the profile layout (by label: the
    rows of a TF32 engine say precision fp32 too, by storage)."""
    return [c for c in configs(src)[model].values() if c.harness == harness and c.label.split()[1:2] == ["fp32"]
            and c.label.split()[0] in ("naive", "per_batch", "buckets")]


# --- layouts-<gpu>.json (with torch-baselines-<gpu>.json for torch.compile): the layouts run -----------
PB, PB16 = "per_batch fp32 serving", "per_batch fp16 serving"
L = "layouts"


def _sites(s) -> dict:
    b = next((b for b in s.data[L].get("builds", []) if b.get("model") == "encoder"
              and b.get("label") == FDS_OFF.rsplit(" ", 1)[0]), None)
    if not b or not b.get("sites"):
        raise ReportInputError(f"{s.name(L)}: no encoder build '{FDS_OFF}' with pass sites")
    return b["sites"]


def _fp16_r0_miss(s) -> str:
    rows = [r for (bs, _), r in cfg(s, "decoder", PB16).cases.items() if bs > 1]
    return pct(max(r["r0"] for r in rows) / threshold("decoder", "r0") - 1)


def _contest_fp32(s) -> list[Config]:
    """The decoder's all-Good FP32 contest-harness engines of the layouts suite (not TF32, not a study's config)."""
    return [c for c in configs(s)["decoder"].values() if c.harness == "contest" and "fp32" in c.label.split()
            and c.all_good]


ROLES = {"enc.best-contest": ("encoder", "best contest"), "enc.best-serving": ("encoder", "best serving"),
         "enc.torch-compile": ("encoder", "torch.compile"), "dec.best-serving": ("decoder", "best serving"),
         "dec.best-contest": ("decoder", "best contest")}
for _k, (_m, _role) in ROLES.items():
    number(f"layouts.{_k}.vs-naive", "layouts,torch-baselines",
           f"{_m}: time of the {_role} role / the naive engine's (the latency figure's roles)",
           lambda s, m=_m, r=_role: times(vs_naive(s, m, role(s, m, r))))
    number(f"layouts.{_k}.sum", "layouts,torch-baselines", f"{_m}: sum over the grid of the {_role} role",
           lambda s, m=_m, r=_role: ms(role(s, m, r).sum_ms))
for _k in ("dec.best-serving", "dec.best-contest"):
    number(f"layouts.{_k}.label", "layouts,torch-baselines", f"decoder: the label of the {ROLES[_k][1]} role",
           lambda s, r=ROLES[_k][1]: role(s, "decoder", r).label)
for _k, (_m, _label) in {"enc.per_batch-fp16": ("encoder", PB16), "enc.per_batch": ("encoder", PB),
                         "enc.fds_off": ("encoder", FDS_OFF), "enc.passes": ("encoder", "single+passes fp32 contest"),
                         "enc.per_batch-contest": ("encoder", "per_batch fp32 contest")}.items():
    number(f"layouts.{_k}.vs-naive", L, f"{_m}: time of `{_label}` / the naive engine's",
           lambda s, m=_m, label=_label: times(vs_naive(s, m, cfg(s, m, label))))
for _k, (_m, _label) in {"enc.per_batch": ("encoder", PB), "enc.per_batch-nographs": ("encoder", PB + "-nographs"),
                         "dec.naive": ("decoder", NAIVE), "dec.fds_off": ("decoder", FDS_OFF)}.items():
    number(f"layouts.{_k}.sum", L, f"{_m}: sum over the grid of `{_label}`",
           lambda s, m=_m, label=_label: ms(cfg(s, m, label).sum_ms))
for _k, (_label, _shape, _field, _d) in {
        "enc.naive.1x16": (NAIVE, "1x16", "latency_ms", 1), "enc.naive.1x16.host": (NAIVE, "1x16", "host_ms", 1),
        "enc.fds_off.1x16": (FDS_OFF, "1x16", "latency_ms", 2),
        "enc.fds_off.1x16.host": (FDS_OFF, "1x16", "host_ms", 1),
        "enc.per_batch.16x1024": (PB, "16x1024", "latency_ms", 1),
        "enc.per_batch-fp16.16x1024": (PB16, "16x1024", "latency_ms", 1)}.items():
    number(f"layouts.{_k}", L, f"encoder `{_label}` at {_shape}: {_field}",
           lambda s, lb=_label, sh=_shape, f=_field, d=_d: ms(case(cfg(s, "encoder", lb), sh)[f], d))

number("layouts.enc.naive-range", L, "the naive encoder's latency per shape, lowest-highest",
       lambda s: span([r["latency_ms"] for r in cfg(s, "encoder", NAIVE).cases.values()], "{:.0f}".format, " ms"))
number("layouts.dec.layouts.vs-naive", L, "decoder: time of each FP32 serving engine of a profile layout (naive, "
       "per_batch, buckets; with and without CUDA graphs) / the naive engine's, lowest-highest",
       lambda s: span([vs_naive(s, "decoder", c) for c in layout_fp32(s, "decoder", "serving")], "{:.2f}".format, "x"))
number("layouts.dec.contest-fp32.vs-naive", L, "decoder: time of each all-Good FP32 contest-harness engine / the naive "
       "engine's, lowest-highest",
       lambda s: span([vs_naive(s, "decoder", c) for c in _contest_fp32(s)], "{:.2f}".format, "x"))
number("layouts.enc.graphs-gain", L, "encoder per_batch FP32: time saved by CUDA graphs, 1 - graphs / plain enqueues",
       lambda s: pct(1 - cfg(s, "encoder", PB).sum_ms / cfg(s, "encoder", PB + "-nographs").sum_ms))
number("layouts.enc.per_batch.fp16-speedup", L, "encoder per_batch (serving): FP32 time / FP16 time",
       lambda s: times(cfg(s, "encoder", PB).sum_ms / cfg(s, "encoder", PB16).sum_ms, 1))
number("layouts.dec.per_batch-fp16.r0-miss", L, f"decoder `{PB16}` at batch > 1: worst r0 / its threshold - 1",
       _fp16_r0_miss)
number("layouts.dec.naive-fp16.r0", L, "decoder: worst r0 of the naive FP16 engines (both harnesses)",
       lambda s: sci(max(r["r0"] for h in ("contest", "serving")
                         for r in cfg(s, "decoder", f"naive fp16 {h}").cases.values())))
number("layouts.dec.batch1.a0", L, "decoder: a0 at batch 1 of the FP32 per_batch and buckets serving engines, "
       "lowest-highest", lambda s: span([r["a0"] for c in layout_fp32(s, "decoder", "serving")
                                         if not c.label.startswith("naive")
                                         for (bs, _), r in c.cases.items() if bs == 1], "{:.1f}".format))
number("layouts.dec.fds_off.bad-shapes", L, f"decoder `{FDS_OFF}`: its Bad shapes",
       lambda s: ", ".join(shape_key(*k) for k, r in sorted(cfg(s, "decoder", FDS_OFF).cases.items()) if not r["good"]))
number("layouts.dec.fds_off.bad-r0", L, f"decoder `{FDS_OFF}`: worst r0 of its Bad shapes",
       lambda s: sci(max(r["r0"] for r in cfg(s, "decoder", FDS_OFF).cases.values() if not r["good"])))
number("layouts.enc.naive.conv-node", L, "layer profile `encoder naive fp32 1x16`: mean time of its conv-module "
       "Myelin nodes among the slowest layers",
       lambda s: ms(statistics.mean(conv_nodes(profile(s, "encoder naive fp32 1x16")))))
number("layouts.enc.per_batch.conv-node", L, "layer profile `encoder per_batch fp32 1x16`: its conv-module Myelin "
       "nodes, lowest-highest",
       lambda s: span(conv_nodes(profile(s, "encoder per_batch fp32 1x16")), "{:.2f}".format, " ms"))
number("layouts.enc.per_batch.host", L, "layer profile `encoder per_batch fp32 1x16`: host time of the enqueue",
       lambda s: f"{profile(s, 'encoder per_batch fp32 1x16')['host_ms']:.2g} ms")
number("layouts.enc.padding.out-diff", L, "padding proof (encoder): max |diff| of encoder_out",
       lambda s: f"{s.data[L]['padding_proof']['encoder']['max_abs_diff']['encoder_out']:.2g}")
number("layouts.enc.padding.lens-diff", L, "padding proof (encoder): max |diff| of encoder_out_lens",
       lambda s: f"+{s.data[L]['padding_proof']['encoder']['max_abs_diff']['encoder_out_lens']:g}")
number("layouts.enc.reference-sites", L, "encoder fds_off build: sites per reference pass",
       lambda s: ", ".join(f"{k} {v}" for k, v in _sites(s).items() if k != "bool_slice"))
number("layouts.enc.bool_slice-sites", L, "encoder fds_off build: sites of the bool_slice pass",
       lambda s: str(_sites(s)["bool_slice"]))
number("layouts.parallel", L, "builds the layouts run made at a time (settings.parallel)",
       lambda s: str(s.data[L]["settings"]["parallel"]))


# --- diag-decoder-batch1-<gpu>.json -----------------------------------------------------------------
def _diag(s, bucket: int) -> list[dict]:
    return [r for r in s.data["diag-decoder-batch1"].get("rows", []) if r.get("bucket") == bucket]


D = "diag-decoder-batch1"
number("diag.batch1.rows-off", D, "decoder, batch fixed at 1: (hypothesis, position) rows off by > 1e-3",
       lambda s: span([r["positions_over_1e-3"] for r in _diag(s, 1)], str))
number("diag.batch1.max-diff", D, "decoder, batch fixed at 1: max |diff| of decoder_out",
       lambda s: f"{max(r['max_diff_inside'] for r in _diag(s, 1)):.2g}")
number("diag.batch2.max-diff", D, "decoder, batch fixed at 2: max |diff| of decoder_out",
       lambda s: sci(max(r["max_diff_inside"] for r in _diag(s, 2))))


# --- study-<gpu>.json: the older (November) study ---------------------------------------------------
def _nov(s, seed: str) -> list[dict]:
    st = next((st for st in s.data["study"]["studies"] if st.get("model") == "encoder"), {})
    t = next((t for t in st.get("trials", []) if (t.get("user_attrs") or {}).get("seed") == seed), None)
    if t is None:
        raise ReportInputError(f"{s.name('study')}: no encoder trial of the seed '{seed}'")
    return t["user_attrs"]["cases"]


def _largest(cases: list[dict]) -> dict:
    return max(cases, key=lambda c: c["batch"] * c["length"])


number("nov.enc.fp32-range", "study", "older study, encoder baseline trial: latency per shape but the largest",
       lambda s: span([c["latency_ms"] for c in _nov(s, "baseline") if c is not _largest(_nov(s, "baseline"))],
                      "{:.0f}".format, " ms"))
number("nov.enc.largest", "study", "older study: its largest shape",
       lambda s: shape_key(_largest(_nov(s, "baseline"))["batch"], _largest(_nov(s, "baseline"))["length"]))
number("nov.enc.fp16-median", "study", "older study, encoder all_fp16 trial: median latency over the shapes",
       lambda s: f"{statistics.median(c['latency_ms'] for c in _nov(s, 'all_fp16')):.0f} ms")
number("nov.enc.fp16-miss", "study", "older study, encoder all_fp16 trial: worst ratio - 1 per shape, lowest-highest",
       lambda s: span([c["worst_ratio"] - 1 for c in _nov(s, "all_fp16")], lambda x: f"{x * 100:.0f}", "%"))


# --- plugins-<gpu>.json and the build.sh rebuild of its best decoder (reproduce-plugins-<gpu>.json) ---
def _rp(s) -> list[dict]:
    return s.data["reproduce-plugins"].get("compare") or []


def _outside(s) -> list[dict]:
    return [c for c in _rp(s) if not c.get("within")]


RP = "reproduce-plugins"
number("plugins.parallel", "plugins", "builds the plugins bench made at a time (settings.parallel)",
       lambda s: str(s.data["plugins"]["settings"]["parallel"]))
number("repro-plugins.label", RP, "the plugins bench's configuration build.sh rebuilt",
       lambda s: "`" + ", ".join(sorted({c["study"] for c in _rp(s)})) + "`")
number("repro-plugins.bench-sum", RP, "sum over the grid of the plugins bench's measurement",
       lambda s: ms(sum(c["trial_ms"] for c in _rp(s)), 2))
number("repro-plugins.rebuilt-sum", RP, "sum over the grid of build.sh's engine run by evaluate.py",
       lambda s: ms(sum(c["rebuilt_ms"] for c in _rp(s)), 2))
number("repro-plugins.outside", RP, "shapes outside the tolerance, of all compared",
       lambda s: f"{len(_outside(s))} of {len(_rp(s))}")
number("repro-plugins.tolerance", RP, "reproduce.py's tolerance", lambda s: pct(s.data[RP]["tolerance"]))
number("repro-plugins.outside-ratios", RP, "each shape outside the tolerance: build.sh / bench",
       lambda s: ", ".join(f"{shape_key(c['bs'], c['sl'])} {c['ratio']:.2f}" for c in _outside(s)) or "none")
number("repro-plugins.outside-gap", RP, "|build.sh - bench| of the shapes outside, lowest-highest",
       lambda s: span([abs(c["rebuilt_ms"] - c["trial_ms"]) for c in _outside(s)], "{:.1f}".format, " ms"))
number("repro-plugins.outside-ms", RP, "latencies (bench and build.sh) of the shapes outside, lowest-highest",
       lambda s: span([c[k] for c in _outside(s) for k in ("trial_ms", "rebuilt_ms")], "{:.1f}".format, " ms"))
