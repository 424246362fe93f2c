"""The Markdown of README's generated blocks (`<!-- report:NAME -->`), from the result files and the specs.

Every number here is read from a committed bench/results/*.json file; nothing is typed in by hand.
"""
from __future__ import annotations

import statistics

from bench.report_data import BENCH, MODELS, Config, Sources, configs, grid, outputs, pick, shape_key, time_ratio
from scoring.metrics import rules

FIG_DIR = "docs/figures"
CAPTIONS = {
    "latency": "Latency per judged shape of the naive engine, the fastest all-Good engine of each harness, "
               "torch eager and torch.compile (log scale; hollow marker = Bad case).",
    "latency-all": "Latency per judged shape of every configuration of the layouts run, one panel per model and "
                   "harness (`serving` rows with and without CUDA graphs; log scale; hollow marker = Bad case).",
    "latency-all-h100": "The same for the tenth session's full layouts run on an H100 (FP32 and FP16 of every "
                        "layout; log scale; hollow marker = Bad case).",
    "speedup": "Speed-up of every configuration over the naive FP32 engine (contest harness) and over "
               "torch.compile, summed over the shapes both measured.",
    "layers": "TensorRT's per-layer profile of the same encoder layers before and after the biggest "
              "optimization (the run and profile of each engine are in the legend).",
    "build": "Build time per layout: TensorRT builder time and the wall time of the whole build process.",
    "pareto": "Latency vs worst error ratio of every configuration of the layouts and plugins benches measured "
              "on the whole grid; the solid line is the front of their TensorRT engines (none faster at equal "
              "or smaller error), the dashed one the front of each study (`search pareto`). Only the front points "
              "and PyTorch are named (the others' names overlap; the figure's JSON beside it has every point), "
              "a study's points by trial number (the precision tables name their plans).",
    "pareto-h100": "The same on the H100: every configuration of the tenth session's layouts run (both harnesses, "
                   "torch included) and, dashed, the front of the decoder serving study with the precision "
                   "plans of the twelfth and thirteenth sessions (`search pareto`), named as above.",
    "study": "Best feasible objective so far vs trial of the older study export (its date is in the title: "
             "16-shape grid with batch 64, seed configs only), not the decoder contest study below.",
    "plugins": "Sum over the judged grid of each plugins-bench configuration, FP32 and FP16 (norms, and the "
               "decoder's output, pinned FP32) without and with our plugins; hatched bars have Bad cases.",
    "plugin-layers": "TensorRT's per-layer profile of the encoder's FASTER_DYNAMIC_SHAPES-off FP32 engine "
                     "without and with the WenetLayerNorm plugin (the run and profile of each engine are in "
                     "the legend).",
    "decoder-study": "Every trial of the decoder contest study: objective (x = infeasible) with the best "
                     "feasible so far, and the trial's duration coloured by its state (white: engine build).",
    "decoder-serving-study": "Every trial of the decoder serving study: objective (log scale; x = infeasible, "
                             "its objective penalised) with the best feasible so far, and the trial's duration "
                             "coloured by its state (white: engine build).",
}
TRT_CASES = {"cache_default": "timing cache serialized after a build (default tactic sources)",
             "cache_nocudnn": "the same with the CUDNN tactic source cleared",
             "opt4": "builder optimization level 4", "opt5": "builder optimization level 5"}
SIGNALS = {-6: "SIGABRT (abort)", -11: "SIGSEGV (segfault)", 0: "ok"}


def esc(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows])


def e(x) -> str:
    return "-" if x is None else f"{x:.2e}"


def graphs(c: Config) -> str:
    notes = {str(r.get("graph_note")) for r in c.cases.values()}
    if any(n.startswith("not capturable") for n in notes):
        return "refused"
    flags = {r.get("cuda_graph") for r in c.cases.values()}
    return "yes" if flags == {True} else "no" if flags == {False} else "some"


def _first(c: Config, key: str):
    return next(iter(c.cases.values())).get(key)


def summary(src: Sources, model: str, keys: tuple[str, ...] = BENCH) -> str:
    """The model's table of the layouts run in keys[0] (default: the layouts file with the torch baselines)."""
    if src.data.get(keys[0]) is None:
        return f"_Not made: {src.missing(keys[0])}._"
    cfgs = configs(src, keys)[model]
    roles = pick(cfgs)
    full = len(grid(cfgs))
    rows = []
    for c in sorted(cfgs.values(), key=lambda c: (c.is_torch, c.harness, c.sum_ms if len(c.cases) == full else 1e18)):
        vs = []
        for base in (roles["naive"], roles["torch.compile"]):
            ratio, n = time_ratio(c, base) if base else (None, 0)
            vs.append("-" if ratio is None else f"{ratio:.2f}x" + ("" if n == full else f" ({n} shapes)"))
        passes = _first(c, "passes")
        preview = _first(c, "preview_features") or {}
        rows.append([f"`{c.label}`", c.harness, _first(c, "layout") or "-", len(passes) if passes else "-",
                     ", ".join(f"{k}={'on' if v else 'off'}" for k, v in sorted(preview.items())) or "default",
                     "-" if c.is_torch else graphs(c), f"{c.good}/{len(c.cases)}",
                     f"{c.sum_ms:.1f}" + ("" if len(c.cases) == full else f" ({len(c.cases)} shapes)"), *vs])
    base = roles["torch.compile"].label if roles["torch.compile"] else "torch.compile"
    return (f"{model}, sums over the {full} judged shapes (`{src.name(keys[0])}`):\n\n"
            + table(["configuration", "harness", "layout", "passes", "preview features", "CUDA graphs", "Good",
                     "sum ms", "time vs naive", f"time vs {base}"], rows))


def latency_shapes(src: Sources) -> str:
    if src.data.get("layouts") is None:
        return f"_Not made: {src.missing('layouts')}._"
    out = []
    for model in MODELS:
        cfgs = configs(src)[model]
        shapes = grid(cfgs)
        rows = []
        for role, c in pick(cfgs).items():
            if c is None:
                continue
            cells = [f"{c.cases[s]['latency_ms']:.2f}{'' if c.cases[s]['good'] else '*'}" if s in c.cases else "-"
                     for s in shapes]
            rows.append([role, f"`{c.label}`", *cells])
        out.append(f"{model} (ms per run; `*` = Bad case):\n\n"
                   + table(["role", "configuration", *(shape_key(*s) for s in shapes)], rows))
    return "\n\n".join(out)


def passes(src: Sources) -> str:
    rec = src.data.get("layouts")
    if rec is None:
        return f"_Not made: {src.missing('layouts')}._"
    out = []
    for model in MODELS:
        built = [b for b in rec.get("builds", []) if b.get("model") == model and b.get("sites")]
        names = list(dict.fromkeys(n for b in built for n in b["sites"]))
        if built:
            out.append(f"{model}: sites each pass rewrote (`sites` of the build reports):\n\n" + table(
                ["build", *names], [[b["label"], *(b["sites"].get(n, "-") for n in names)] for b in built]))
    return "\n\n".join(out) or "_No build in the layouts file records pass sites._"


ACCURACY_NOTE = (
    "The result files hold, per shape, the contest's two metrics of each output: max |a - b| (a0, a1) and "
    "median |a - b| / (|b| + eps) (r0, r1). Mean and median absolute error and max and mean relative error "
    "were not recorded, so they are not shown. The reference outputs come from the PyTorch model (the "
    "`torch eager fp32` rows reproduce them exactly, error 0). **The weights are random** (seeded): these "
    "errors compare TensorRT with PyTorch on the same random model, not recognition accuracy. The engines "
    "here are those of the layouts run")


def accuracy_note(src: Sources) -> str:
    rep = src.data.get("reproduce")
    if not rep or not rep.get("compare"):
        return ACCURACY_NOTE + "; no frozen config has been rebuilt and measured on this grid yet."
    studies = sorted({f"{c.get('study')} trial {c.get('trial')}" for c in rep["compare"]})
    return (ACCURACY_NOTE + f"; the frozen best of {', '.join(studies)} rebuilt by build.sh is in "
            f"`{src.name('reproduce')}` (section Reproduction).")


def layer_table(specs: dict, name: str = "layers") -> str:
    spec, why = specs[name]
    if spec is None:
        return f"_Not made: {why}._"
    profs = spec["profiles"]
    head = ["layer (ms)", *(f"`{p['key']}` ({p['harness']}, profile {p['profile']})" for p in profs)]
    rows = [[n, *(f"{p['top'][n]:.3f}" if n in p["top"] else "-" for p in profs)] for n in spec["order"]]
    rows += [["all other layers", *(f"{p['other_ms']:.3f}" for p in profs)],
             ["sum over the layers (number of layers)", *(f"{p['sum_ms']:.2f} ({p['layers']})" for p in profs)],
             ["latency of the run / host time of the enqueue",
              *(f"{p['latency_ms']:.2f} / {p['host_ms']:.3f}" for p in profs)]]
    tops = sorted({p["top_n"] for p in profs})
    return (table(head, rows) + f"\n\n`-`: not among that engine's {'/'.join(map(str, tops))} slowest layers "
            f"(the profile records those only; from `{spec['sources'][0]}`).")


def error_rows(model: str, role: str, c: Config) -> list[list]:
    """Per output of one configuration: its thresholds, the shapes within them and worst / median errors."""
    rows = []
    for (name, rule), (ka, kr) in zip(zip(outputs(model), rules(model)), (("a0", "r0"), ("a1", "r1"))):
        rs = [c.cases[s] for s in sorted(c.cases)]
        limits = ", ".join(p for p in (f"abs < {rule.max_abs:g}" if rule.max_abs else "",
                                       f"rel < {rule.max_rel:g}") if p)
        if any(r.get(ka) is None or r.get(kr) is None for r in rs):
            # a trial of an earlier session: its study kept the scores, not the errors per output
            good = sum(1 for r in rs if r.get("good"))
            rows.append([role, f"`{c.label}`", f"`{name}`", limits, f"{good}/{len(rs)} Good (both outputs)",
                         "not recorded", "not recorded", "not recorded"])
            continue
        ok = sum(1 for r in rs if (rule.max_abs is None or r[ka] < rule.max_abs) and r[kr] < rule.max_rel)
        rows.append([role, f"`{c.label}`", f"`{name}`", limits, f"{ok}/{len(rs)}",
                     e(max(r[ka] for r in rs)), e(max(r[kr] for r in rs)), e(statistics.median(r[kr] for r in rs))])
    return rows


ERROR_HEAD = ["role", "configuration", "output", "Good iff", "shapes within it", "max abs error (worst shape)",
              "median rel error (worst shape)", "median rel error (median of shapes)"]


def accuracy(src: Sources) -> str:
    if src.data.get("layouts") is None:
        return f"_Not made: {src.missing('layouts')}._"
    out = [accuracy_note(src)]
    for model in MODELS:
        rows = [r for role, c in pick(configs(src)[model]).items() if c is not None and role != "torch eager"
                for r in error_rows(model, role, c)]
        out.append(f"{model}:\n\n" + table(ERROR_HEAD, rows))
    detail = []
    for model in MODELS:
        cfgs = configs(src)[model]
        chosen = [(r, c) for r, c in pick(cfgs).items() if c is not None and r in ("best contest", "best serving")]
        for role, c in chosen:
            detail.append(f"{model}, {role} (`{c.label}`):\n\n" + table(
                ["shape", "a0", "r0", "a1", "r1", "Good"],
                [[shape_key(*s), e(r["a0"]), e(r["r0"]), e(r["a1"]), e(r["r1"]), "Good" if r["good"] else "Bad"]
                 for s, r in sorted(c.cases.items())]))
    return ("\n\n".join(out) + "\n\n<details><summary>Per shape: a0, r0 (output 0), a1, r1 (output 1) of the "
            "best engines</summary>\n\n" + "\n\n".join(detail) + "\n\n</details>")


def environment(src: Sources) -> str:
    probe, lay, tor = (src.data.get(k) or {} for k in ("probe", "layouts", "torch-baselines"))

    def cuda(v):
        return f"{v // 1000}.{v % 1000 // 10}" if isinstance(v, int) else "-"
    rows = [["GPU", lay.get("gpu") or probe.get("gpu") or "-", "layouts, probe"],
            ["CUDA version of the driver (cudaDriverGetVersion)", cuda(probe.get("cuda_driver")), "probe"],
            ["CUDA runtime of the TensorRT rig", cuda(probe.get("cuda_runtime")), "probe"],
            ["TensorRT", lay.get("tensorrt") or probe.get("tensorrt") or "-", "layouts, probe"],
            ["Python of the TensorRT runs", lay.get("python") or probe.get("python") or "-", "layouts, probe"],
            ["PyTorch (torch baselines; Python)", f"{tor.get('torch', '-')} ({tor.get('python', '-')})",
             "torch-baselines"]]
    files = [[f"`{src.name(k)}`", date or "-", f"`{command}`" if command else "-"]
             for k, d in src.data.items() if d for date, command in [src.meta(k)]]
    return (table(["", "value", "file (bench/results/*-" + src.gpu + ".json)"], rows) + "\n\nFiles read:\n\n"
            + table(["file", "date", "command"], files))


def diag(src: Sources) -> str:
    out = []
    trt = src.data.get("diag-trt86")
    if trt:
        out.append(f"`{src.name('diag-trt86')}` (`{trt.get('command', '')}`):\n\n" + table(
            ["case", "what it builds", "exit status", "last output"],
            [[k, TRT_CASES.get(k, "-"), f"{v.get('returncode')} {SIGNALS.get(v.get('returncode'), '')}".strip(),
              " ".join(v.get("tail") or []) or "-"] for k, v in trt.get("results", {}).items()]))
    dec = src.data.get("diag-decoder-batch1")
    if dec:
        out.append(f"`{src.name('diag-decoder-batch1')}` (decoder, one profile with the batch fixed):\n\n" + table(
            ["batch fixed at", "frames", "max abs diff (real tokens)", "max abs diff (padding)",
             "positions off > 1e-3", "best_index equal"],
            [[r["bucket"], r["frames"], e(r["max_diff_inside"]), e(r["max_diff_past_len"]),
              r["positions_over_1e-3"], r["best_index_equal"]] for r in dec.get("rows", [])]))
    probe = src.data.get("probe")
    if probe:
        bad = [r for r in probe.get("results", []) if r.get("status") == "FAIL"]
        out.append(f"`{src.name('probe')}` (`python3 -m engine probe`), failed features:\n\n" + table(
            ["feature", "detail (first 200 characters)"], [[r["feature"], r["detail"][:200]] for r in bad]))
    return "\n\n".join(out) or "_No diag file is committed._"


def study_rows(st: dict) -> list[list]:
    rows = []
    for t in st.get("trials", []):
        ua = t.get("user_attrs") or {}
        c = t.get("constraint")
        rows.append([st.get("study"), t["number"], ua.get("seed") or "-", t["state"],
                     "-" if t.get("value") is None else f"{t['value']:.1f}", "yes" if t.get("feasible") else "no",
                     "-" if c is None else f"{c + 1:.3g}",
                     "-" if ua.get("build_s") is None else f"{ua['build_s']:.0f}", len(ua.get("cases") or [])])
    return rows


def study(src: Sources) -> str:
    """The older study export (study-<gpu>.json): every trial, labelled with its export date and grid."""
    rec = src.data.get("study")
    if rec is None:
        return f"_Not made: {src.missing('study')}._"
    cases = [c for st in rec.get("studies", []) for t in st.get("trials", [])
             for c in (t.get("user_attrs") or {}).get("cases") or []]
    grid_note = (f", {len({(c.get('batch'), c.get('length')) for c in cases})} shapes up to batch "
                 f"{max(c.get('batch') or 0 for c in cases)}" if cases else "")
    date = (src.meta("study")[0] or "date not recorded")[:10]
    return (f"`{src.name('study')}`: an **older** study export (`python3 -m search export` of {date}{grid_note}, "
            f"not the decoder contest study below):\n\n"
            + table(["study", "trial", "seed", "state", "objective ms", "feasible", "worst ratio", "build s",
                     "shapes"], [r for st in rec.get("studies", []) for r in study_rows(st)]))


def figure(name: str, spec: dict | None, why: str | None) -> str:
    if spec is None:
        return f"_Figure `{name}` not made: {why}._"
    srcs = ", ".join(f"`{s}`" for s in spec["sources"])
    return (f"![{spec['title']}]({FIG_DIR}/{name}.png)\n\n"
            f"*{CAPTIONS[name]} From {srcs}; plotted data: `{FIG_DIR}/{name}.json`.*")
