"""The data of every figure, as plain JSON-able dicts ("specs"): bench.report_figures draws only from these.

A spec is also the figure's sidecar (figures/NAME.json), so `--check` can compare what is plotted
without re-rendering (matplotlib's bytes change between versions; the data does not).
Each builder returns (spec, None) or (None, why the figure is skipped).
"""
from __future__ import annotations

import re

from bench.report_data import (BENCH, H100, MODELS, NAIVE, Config, Sources, build_of, configs, grid, pick,
                               plugin_free, plugin_set, plugin_sites, rnd, sampler_curves, shape_key, study_series,
                               time_ratio, trials)

FIGURES = ("latency", "latency-all", "latency-all-h100", "speedup", "layers", "build", "pareto", "pareto-h100",
           "study", "plugins", "plugin-layers", "decoder-study", "decoder-serving-study")


def _layouts_configs(src: Sources, keys: tuple[str, ...] = BENCH):
    if src.data.get(keys[0]) is None:
        return None, src.missing(keys[0])
    return configs(src, keys), None


def _line(c: Config, shapes: list[tuple[int, int]]) -> dict:
    """One configuration's latency and Good flag per shape (None where it has no row)."""
    return {"label": c.label, "latency_ms": [c.cases[s]["latency_ms"] if s in c.cases else None for s in shapes],
            "good": [bool(c.cases[s].get("good")) if s in c.cases else None for s in shapes]}


def latency(src: Sources):
    """Latency per shape of each model's ROLES (report_data.pick) in the layouts bench (with the torch baselines)."""
    cfgs, why = _layouts_configs(src)
    if cfgs is None:
        return None, why
    panels = []
    for model in MODELS:
        shapes = grid(cfgs[model])
        series = [{"role": role, **_line(c, shapes)} for role, c in pick(cfgs[model]).items() if c is not None]
        panels.append({"model": model, "shapes": [shape_key(*s) for s in shapes], "series": series})
    return {"title": f"Latency per judged shape on {src.gpu.upper()} (hollow marker = Bad case)",
            "sources": [src.name("layouts")], "panels": panels}, None


HARNESS_PANELS = ("contest", "serving", "torch")


def latency_all(src: Sources, keys: tuple[str, ...] = BENCH):
    """Latency per shape of every configuration of the layouts bench in keys[0]: one panel per model and harness
    (contest, serving with and without CUDA graphs, PyTorch), a line per configuration."""
    cfgs, why = _layouts_configs(src, keys)
    if cfgs is None:
        return None, why
    panels = []
    for model in MODELS:
        shapes = grid(cfgs[model])
        for harness in HARNESS_PANELS:
            series = [_line(c, shapes) for c in cfgs[model].values() if c.harness == harness]
            if series:
                panels.append({"model": model, "harness": harness, "shapes": [shape_key(*s) for s in shapes],
                               "series": series})
    return {"title": f"Every configuration's latency per judged shape on {src.gpu_of(keys[0]).upper()} "
                     "(hollow marker = Bad case)", "sources": [src.name(keys[0])], "panels": panels}, None


def _speedup_bars(cfgs: dict[str, Config], base: Config) -> list[dict]:
    bars = []
    for c in cfgs.values():
        if c is base:
            continue
        ratio, n = time_ratio(c, base)
        if ratio:   # a partial configuration is compared on the shapes it has
            bars.append({"label": c.label + ("" if n == len(base.cases) else f" ({n} shapes)"), "speedup": 1.0 / ratio,
                         "all_good": c.all_good, "torch": c.is_torch})
    return sorted(bars, key=lambda b: (-b["speedup"], b["label"]))


def speedup(src: Sources):
    cfgs, why = _layouts_configs(src)
    if why:
        return None, why
    panels = []
    for model in MODELS:
        roles = pick(cfgs[model])
        for role in ("naive", "torch.compile"):
            base = roles[role]
            if base is None:
                continue
            n = len(base.cases)
            note = "" if n == len(grid(cfgs[model])) else f" ({n} shapes)"
            panels.append({"model": model, "baseline": base.label, "note": note,
                           "bars": _speedup_bars(cfgs[model], base)})
    if not panels:
        return None, f"neither '{NAIVE}' nor a torch.compile row in {src.name('layouts')}"
    return {"title": "Speed-up over the judged grid: time of the baseline / time of the configuration "
                     "(grey = some case Bad, orange = PyTorch)",
            "sources": [src.name("layouts")], "panels": panels}, None


def build(src: Sources):
    rec = src.data.get("layouts")
    if rec is None:
        return None, src.missing("layouts")
    panels = []
    for model in MODELS:
        bars = [{"label": b["label"], "build_s": b.get("build_s"), "wall_s": b.get("wall_s"),
                 "status": b.get("status"), "reason": b.get("reason") or ""}
                for b in rec.get("builds", []) if b.get("model") == model]
        if bars:
            panels.append({"model": model, "bars": sorted(bars, key=lambda b: b["label"])})
    if not panels:
        return None, f"no 'builds' in {src.name('layouts')}"
    par = (rec.get("settings") or {}).get("parallel")
    return {"title": "Engine build time per layout (bar: TensorRT builder; light bar: the whole build process"
                     + (f"; {par} builds at a time)" if par else ")"),
            "sources": [src.name("layouts")], "panels": panels}, None


def short_layer(name: str) -> str:
    """'{ForeignNode[/encoder/encoders.9/conv_module/Cast...]} [profile 1]' -> 'Myelin encoders.9/conv_module'."""
    name = re.sub(r" \[profile \d+\]$", "", name)
    m = re.search(r"/(?:encoder|decoder)/([^/\]]+)(?:/([^/\]]+))?", name)
    core = "/".join(p for p in m.groups() if p) if m else name[:40]
    return ("Myelin " if "ForeignNode" in name else "") + core


def _layers(src: Sources, key: str, title: str):
    rec = src.data.get(key)
    if rec is None:
        return None, src.missing(key)
    profs = rec.get("layer_profiles") or {}
    if not profs:
        return None, f"no 'layer_profiles' in {src.name(key)}"
    # the "before" of the figure first: the naive engine, an engine without plugins
    keys = sorted(profs, key=lambda k: (NAIVE.split()[0] not in k, bool(plugin_set(k)), k))
    out, order = [], []
    for k in keys:
        p = profs[k]
        top: dict[str, float] = {}
        for e in p.get("top", []):
            top[short_layer(e["layer"])] = top.get(short_layer(e["layer"]), 0.0) + float(e["ms"])
        order += [n for n in sorted(top, key=lambda n: (-top[n], n)) if n not in order]
        out.append({"key": k, "harness": p.get("harness"), "profile": p.get("profile"),
                    "latency_ms": p.get("latency_ms"), "host_ms": p.get("host_ms"), "layers": p.get("layers"),
                    "sum_ms": p.get("sum_ms"), "top": top, "top_n": len(p.get("top", [])),
                    "other_ms": float(p.get("sum_ms") or 0.0) - sum(top.values())})
    return {"title": title, "sources": [src.name(key)], "order": order, "profiles": out}, None


def layers(src: Sources):
    return _layers(src, "layouts", "TensorRT per-layer profiler: where the time goes (top layers of each engine)")


def plugin_layers(src: Sources):
    return _layers(src, "plugins", "TensorRT per-layer profiler with and without our LayerNorm plugin "
                                   "(top layers of each engine)")


def _front(points: list[dict]) -> None:
    """Mark the TensorRT points no other TensorRT point beats in both latency and worst ratio."""
    trt = [p for p in points if not p["torch"]]
    for p in trt:
        p["front"] = not any(q is not p and q["sum_ms"] <= p["sum_ms"] and q["worst_ratio"] <= p["worst_ratio"]
                             and (q["sum_ms"] < p["sum_ms"] or q["worst_ratio"] < p["worst_ratio"]) for q in trt)


def _points(cfgs: dict[str, Config], source: str, left_out: list[str]) -> list[dict]:
    full = len(grid(cfgs))
    points = []
    for c in cfgs.values():
        w = c.worst_ratio()
        why = (f"{len(c.cases)} of {full} shapes" if len(c.cases) != full else
               "error 0: it is the reference" if w == 0 else "error not finite" if w == float("inf") else None)
        if why:     # a log axis cannot show 0, and a partial sum is not comparable
            left_out.append(f"{c.label} ({why})")
            continue
        points.append({"label": c.label, "source": source, "sum_ms": c.sum_ms, "worst_ratio": w,
                       "torch": c.is_torch, "front": False})
    return sorted(points, key=lambda p: p["label"])


def pareto(src: Sources, benches: tuple[str, ...] = ("layouts", "plugins"), fronts_key: str = "pareto"):
    """The layouts (and torch) configurations, the plugins bench's, and each study's front from
    `search pareto` (pareto-<gpu>.json: a list of fronts). benches / fronts_key: other files' keys (the
    H100 layouts run, whose torch rows are in the file, and the H100 serving study's fronts)."""
    have = [k for k in benches if src.data.get(k)]
    studies = [f for f in src.data.get(fronts_key) or [] if f.get("front")]
    if not have and not studies:
        return None, f"{src.missing(benches[0])}, and no other bench file or study front either"
    benches = {k: configs(src, ("layouts", "torch-baselines") if k == "layouts" else (k,)) for k in have}
    panels = []
    for model in MODELS:
        left_out: list[str] = []
        points = [p for k in have for p in _points(benches[k][model], k, left_out)]
        _front(points)
        fronts = [{"study": f.get("study", "?"), "points_in_study": f.get("points"),
                   "points": [{"trial": q.get("trial"), "label": q.get("label"), "sum_ms": float(q["latency_ms"]),
                               "worst_ratio": float(q["worst_ratio"]), "feasible": bool(q.get("feasible"))}
                              for q in sorted(f["front"], key=lambda q: q["worst_ratio"])]}
                  for f in studies if f.get("model") == model]
        if points or fronts:
            panels.append({"model": model, "points": points, "fronts": fronts, "left_out": left_out})
    srcs = [src.name(k) for k in (*have, fronts_key) if src.data.get(k)]
    return {"title": "Latency vs error: sum over the judged grid vs worst metric/threshold ratio (Good iff < 1; "
                     "solid line = front of the bench engines, dashed = a study's front)",
            "sources": srcs, "panels": panels}, None


def study(src: Sources):
    if src.data.get("study") is None:
        return None, src.missing("study")
    series = study_series(src)
    if not series:
        return None, f"no COMPLETE trial in {src.name('study')}"
    samplers = sorted({s["sampler"] for s in series})
    note = ("sampler not recorded in the file, so TPE and random cannot be told apart"
            if samplers == ["not recorded"] else "samplers: " + ", ".join(samplers))
    date = (src.meta("study")[0] or "date not recorded")[:10]
    return {"title": f"Older study export ({date}): best feasible objective so far vs trial ({note})",
            "sources": [src.name("study")], "series": series}, None


def plugins(src: Sources):
    """Sum over the grid per plugins-bench configuration, grouped by its plugin-free base."""
    rec = src.data.get("plugins")
    if rec is None:
        return None, src.missing("plugins")
    cfgs = configs(src, ("plugins",))
    panels = []
    for model in MODELS:
        groups: dict[str, list[dict]] = {}
        for c in cfgs[model].values():
            groups.setdefault(plugin_free(c.label), []).append(
                {"label": c.label, "plugins": plugin_set(c.label) or "none", "sum_ms": c.sum_ms, "good": c.good,
                 "cases": len(c.cases), "sites": plugin_sites(build_of(rec, c))})
        if not groups:
            continue
        order = sorted(groups, key=lambda g: (cfgs[model][g].precision != "fp32" if g in cfgs[model] else True, g))
        panels.append({"model": model, "baseline": (rec.get("baselines") or {}).get(model),
                       "groups": [{"base": g, "bars": sorted(groups[g], key=lambda b: (b["plugins"] != "none",
                                                                                       b["plugins"]))}
                                  for g in order]})
    if not panels:
        return None, f"no rows in {src.name('plugins')}"
    return {"title": "Our CUDA plugins (+ln: WenetLayerNorm, +lsm: WenetLogSoftmax), contest harness: sum over "
                     "the judged grid with and without them (hatched = some case Bad)",
            "sources": [src.name("plugins")], "panels": panels}, None


def decoder_study(src: Sources, key: str = "study-decoder-contest", log_y: bool = False):
    """Every trial of a study export; its GPU is named in the title where the file is not of --gpu's.
    log_y: the objective axis logarithmic (a penalised objective far above the rest)."""
    rec = src.data.get(key)
    if rec is None:
        return None, src.missing(key)
    studies = [{"study": st.get("study", "?"), "model": st.get("model"), "harness": st.get("harness"),
                "trials": trials(st)} for st in rec.get("studies", []) if st.get("trials")]
    if not studies:
        return None, f"no trials in {src.name(key)}"
    date = (src.meta(key)[0] or "date not recorded")[:10]
    gpu = "" if src.gpu_of(key) == src.gpu else f" ({src.gpu_of(key).upper()})"
    return {"title": f"Study export of {date}{gpu}: objective and best feasible so far per trial, and each trial's "
                     "duration by state", "sources": [src.name(key)], "studies": studies,
            "samplers": sampler_curves([st for st in rec.get("studies", []) if st.get("trials")]),
            **({"yscale": "log"} if log_y else {})}, None


BUILDERS = {"latency": latency, "latency-all": latency_all, "latency-all-h100": lambda src: latency_all(src, (H100,)),
            "speedup": speedup, "layers": layers, "build": build, "pareto": pareto, "study": study,
            "pareto-h100": lambda src: pareto(src, ("layouts@h100",), "pareto@h100"),
            "plugins": plugins, "plugin-layers": plugin_layers, "decoder-study": decoder_study,
            "decoder-serving-study": lambda src: decoder_study(src, "study-decoder-serving", log_y=True)}


def all_specs(src: Sources) -> dict[str, tuple[dict | None, str | None]]:
    """name -> (rounded spec, None) or (None, skip note), in FIGURES order."""
    out = {}
    for name in FIGURES:
        spec, why = BUILDERS[name](src)
        out[name] = (rnd({"figure": name, **spec}) if spec else None, why)
    return out

