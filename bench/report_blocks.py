"""README blocks of the plugins bench, the precision study, the build.sh reproduction and the bug entries
these files show; `blocks` assembles every generated block (the decoder studies' are bench.report_study_blocks').

Like bench.report_tables, every number is read from a committed bench/results file.
"""
from __future__ import annotations

import re

from bench.report_data import (H100, MODELS, Config, Sources, build_of, configs, plugin_free, plugin_set,
                               plugin_sites, shape_key, time_ratio)
from bench.report_precision import plans_block
from bench.report_specs import FIGURES
from bench.report_study_blocks import decoder_study, serving_shapes, workers_ab
from bench.report_torch_blocks import torch_compile_shapes
from bench import report_tables as T
from bench.report_tables import e, table

PRECISIONS = ("fp32", "fp16", "mixed", "int8")
NORM32 = ("`norm32`: the norms (decoder: and the output) pinned FP32 with precision constraints obeyed, "
          "which also keeps our plugins' I/O FP32 (`bench/layouts.py`, the plugins suite).")


def _not_made(src: Sources, key: str) -> str:
    return f"_Not made: {src.missing(key)}._"


def _sites(sites: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(sites.items())) or "-"


def _ratio(a: Config | None, b: Config | None) -> str:
    r, n = time_ratio(a, b) if a is not None and b is not None else (None, 0)
    return "-" if r is None else f"{r:.2f}x" + ("" if n == len(b.cases) else f" ({n} shapes)")


def _headline(model: str, cs: dict[str, Config], base: Config | None) -> str:
    """One line per model: the fastest all-Good configuration, then per plugin-free base the best
    configuration with plugins (most Good, then fastest) against that base."""
    good = [c for c in cs.values() if c.all_good]
    out = f"- {model}: "
    if good:
        g = min(good, key=lambda c: (c.sum_ms, c.label))
        out += f"fastest all-Good `{g.label}` {g.sum_ms:.2f} ms" + (
            "" if base is None else " (the baseline)" if g is base else
            f" = {_ratio(g, base)} the baseline `{base.label}` ({base.sum_ms:.2f} ms)") + ". "
    pairs = []
    for free in sorted({plugin_free(c.label) for c in cs.values() if plugin_set(c.label)}):
        p = min((c for c in cs.values() if plugin_set(c.label) and plugin_free(c.label) == free),
                key=lambda c: (-c.good, c.sum_ms, c.label))
        f = cs.get(free)
        pairs.append(f"`{p.label}` {p.sum_ms:.2f} ms, {p.good}/{len(p.cases)} Good" + (
            "" if f is None else f" vs {f.sum_ms:.2f} ms, {f.good}/{len(f.cases)} Good without"))
    return out + ("Best with plugins per precision: " + "; ".join(pairs) + "." if pairs else "No plugin row.")


def plugins(src: Sources) -> str:
    rec = src.data.get("plugins")
    if rec is None:
        return _not_made(src, "plugins")
    cfgs = configs(src, ("plugins",))
    head, tables = [], []
    for model in MODELS:
        cs = cfgs[model]
        if not cs:
            continue
        base = cs.get((rec.get("baselines") or {}).get(model))
        head.append(_headline(model, cs, base))
        rows = []
        for c in sorted(cs.values(), key=lambda c: (c.precision != "fp32", plugin_free(c.label), plugin_set(c.label))):
            b = build_of(rec, c)
            free = cs.get(plugin_free(c.label)) if plugin_set(c.label) else None
            build = "-" if b.get("build_s") is None else f"{b['build_s']:.0f} / {b.get('wall_s') or 0:.0f}"
            rows.append([f"`{c.label}`", c.precision, _sites(plugin_sites(b)), f"{c.good}/{len(c.cases)}",
                         f"{c.sum_ms:.2f}", _ratio(c, free) if free else "-",
                         "-" if c is base else _ratio(c, base), f"{c.worst_ratio():.3g}", build,
                         "-" if b.get("plan_bytes") is None else f"{b['plan_bytes'] / 2**20:.0f}"])
        tables.append(f"{model} (baseline `{base.label if base else '-'}`):\n\n" + table(
            ["configuration", "precision", "plugin sites", "Good", "sum ms", "time vs plugin-free",
             "time vs baseline", "worst ratio", "build s (TensorRT / process)", "plan MiB"], rows))
    date, command = src.meta("plugins")
    return (f"`{src.name('plugins')}` (`{command or '-'}`), contest harness, sums over the judged grid:\n\n"
            + "\n".join(head) + "\n\n" + "\n\n".join(tables) + "\n\n" + NORM32 + " `time vs plugin-free`: against "
            "the same label without its `+ln`/`+lsm` token; `worst ratio`: worst metric/threshold over the grid "
            "(Good iff < 1).")


def _pins(lp: dict) -> str:
    by = {p: [g for g, v in sorted(lp.items()) if v == p] for p in ("fp32", "int8", "fp16")}
    if not lp:
        return "-"
    if not by["fp32"] and not by["int8"]:
        return "all FP16"
    return "; ".join(f"{p.upper()}: {', '.join(gs)}" for p, gs in by.items() if gs and p != "fp16") + "; rest FP16"


def _counts(counts: dict | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted((counts or {}).items())) or "-"


def _plugin_fp16(src: Sources, model: str) -> tuple[Config | None, Config | None]:
    """(the plugins bench's best plugin-backed FP16 configuration, the bench's baseline) of one model."""
    rec = src.data.get("plugins")
    if rec is None:
        return None, None
    cs = configs(src, ("plugins",))[model]
    cand = [c for c in cs.values() if plugin_set(c.label) and c.precision == "fp16"]
    best = min(cand, key=lambda c: (-c.good, c.sum_ms, c.label)) if cand else None
    return best, cs.get((rec.get("baselines") or {}).get(model))


def _classes(summ: list[dict]) -> tuple[str, ...]:
    """The precision classes of a table: tf32 after fp32 where the file has that class (files before it had none)."""
    return PRECISIONS[:1] + (("tf32",) if any(x.get("precision") == "tf32" for x in summ) else ()) + PRECISIONS[1:]


def precision(src: Sources, key: str = "precision", with_plugins: bool = True) -> str:
    """Per model the best trial of each precision class (`search precision --json`); with_plugins: and the
    plugins bench's plugin-backed FP16 engine, a different run, as the last row."""
    rec, plug = src.data.get(key), src.data.get("plugins") if with_plugins else None
    if rec is None and plug is None:
        return _not_made(src, key)
    summ = (rec or {}).get("summary") or []
    prec_cfgs = configs(src, (key,))
    vs_tf32 = any(x.get("speedup_vs_tf32") for x in summ)       # a TF32 row to compare with
    out = []
    for model in MODELS:
        rows = []
        for p in _classes(summ):
            s = next((x for x in summ if x.get("model") == model and x.get("precision") == p), None)
            if s is None:
                rows.append([p, f"study (`{src.name(key)}`)", "**not measured**", *["-"] * (7 + vs_tf32)])
                continue
            c = prec_cfgs[model].get(s["label"])
            good = f"{c.good}/{len(c.cases)} Good, " if c else ""
            hon = s.get("honoured")
            rows.append([p, f"study trial {s.get('trial')}", f"`{s['label']}`", f"{s['latency_sum_ms']:.2f}",
                         f"{s['speedup_vs_fp32']:.2f}x",
                         *([f"{s['speedup_vs_tf32']:.2f}x" if s.get("speedup_vs_tf32") else "-"] if vs_tf32 else []),
                         f"{s['worst_ratio']:.3g}", good + ("feasible" if s.get("feasible") else "infeasible"),
                         _pins(s.get("layer_precision") or {}), _counts(s.get("precision_counts")),
                         "-" if hon is None else "yes" if hon else "no"])
        best, base = _plugin_fp16(src, model) if with_plugins else (None, None)
        if best is not None:
            b = build_of(plug, best)
            speed = f"{base.sum_ms / best.sum_ms:.2f}x (vs `{base.label}`, same bench)" if base else "-"
            rows.append(["fp16 + our plugins", f"**plugins bench** (`{src.name('plugins')}`), not the study",
                         f"`{best.label}`", f"{best.sum_ms:.2f}", speed, f"{best.worst_ratio():.3g}",
                         f"{best.good}/{len(best.cases)} Good", "`norm32`; plugin sites: " + _sites(plugin_sites(b)),
                         _counts(b.get("precision_counts")), "-"])
        out.append(f"{model}:\n\n" + table(["precision", "source", "configuration", "sum ms", "speed-up vs FP32",
                                            *(["speed-up vs TF32"] if vs_tf32 else []), "worst ratio", "Good",
                                            "pinned layer groups", "layers per precision (engine inspector)",
                                            "pins honoured"], rows))
    date, command = src.meta(key)
    intro = (f"`{src.name(key)}` (`{command}`): the best trial per precision of the study"
             if rec else f"`{src.name(key)}` is missing")
    tail = ("; the last row of each model is the plugins bench's, a different run with its own FP32 baseline"
            if with_plugins else "")
    return (intro + tail + ".\n\n" + "\n\n".join(out) + "\n\n" + (NORM32 + " " if with_plugins else "")
            + "`pins honoured`: whether every pinned group ran in the precision asked (`engine.inspect.honoured`); "
              "a Myelin node does not show its layers' precision.")


def precision_accuracy(src: Sources) -> str:
    """Errors per output of the precision study's engines and the plugins bench's FP16 engines."""
    if src.data.get("precision") is None and src.data.get("plugins") is None:
        return _not_made(src, "precision")
    summ = (src.data.get("precision") or {}).get("summary") or []
    prec_cfgs, plug_cfgs = configs(src, ("precision",)), configs(src, ("plugins",))
    out, detail = [], []
    for model in MODELS:
        rows = []
        for s in (x for p in PRECISIONS for x in summ if x.get("model") == model and x.get("precision") == p):
            c = prec_cfgs[model].get(s["label"])
            if c is not None:
                rows += T.error_rows(model, f"study {s['precision']}", c)
        fp16 = [c for c in plug_cfgs[model].values() if c.precision == "fp16"]
        for c in sorted(fp16, key=lambda c: (plugin_set(c.label), c.label)):
            rows += T.error_rows(model, "plugins bench fp16" + (" + plugins" if plugin_set(c.label) else ""), c)
            detail.append(f"{model}, plugins bench `{c.label}`:\n\n" + table(
                ["shape", "a0", "r0", "a1", "r1", "Good"],
                [[shape_key(*k), e(r["a0"]), e(r["r0"]), e(r["a1"]), e(r["r1"]), "Good" if r["good"] else "Bad"]
                 for k, r in sorted(c.cases.items())]))
        if rows:
            out.append(f"{model}:\n\n" + table(T.ERROR_HEAD, rows))
    srcs = ", ".join(f"`{src.name(k)}`" for k in ("precision", "plugins") if src.data.get(k))
    return (f"From {srcs}:\n\n" + "\n\n".join(out) + "\n\n<details><summary>Per shape: the plugins bench's FP16 "
            "engines</summary>\n\n" + "\n\n".join(detail) + "\n\n</details>")


def reproduce(src: Sources, key: str = "reproduce", eval_key: str = "reproduce-eval") -> str:
    """bench/reproduce.py's comparison of a rebuilt engine with its trial's (or a bench's) measurement."""
    rec = src.data.get(key)
    if rec is None:
        return _not_made(src, key)
    comp = rec.get("compare") or []
    if not comp:
        return f"_`{src.name(key)}` compares no shape._"
    ev = src.data.get(eval_key) or {}
    cases = {(m, c.get("batch"), c.get("length")): c for m, v in (ev.get("models") or {}).items()
             for c in v.get("cases", [])}
    tol = rec.get("tolerance")
    tol_s = "-" if tol is None else f"{tol * 100:g}%"
    out = []
    groups: dict[tuple, list[dict]] = {}
    for c in comp:
        groups.setdefault((c.get("model"), c.get("study"), c.get("trial")), []).append(c)
    for (model, study, trial), cs in groups.items():
        rows = []
        for c in sorted(cs, key=lambda c: (c["bs"], c["sl"])):
            ec = cases.get((model, c["bs"], c["sl"]), {})
            rows.append([shape_key(c["bs"], c["sl"]), f"{c['trial_ms']:.3f}", f"{c['rebuilt_ms']:.3f}",
                         f"{c['ratio']:.3f}", "yes" if c.get("within") else "**no**",
                         "-" if c.get("good") is None else "Good" if c["good"] else "Bad",
                         *(e(ec.get(k)) for k in ("a0", "r0", "a1", "r1"))])
        dev = max(abs(c["ratio"] - 1) for c in cs)
        st, sr = sum(c["trial_ms"] for c in cs), sum(c["rebuilt_ms"] for c in cs)
        rows.append(["sum", f"{st:.3f}", f"{sr:.3f}", f"{sr / st:.3f}", "", "", "", "", "", ""])
        bench = trial == "bench"           # reproduce.py --bench-json: a bench's configuration, not a trial
        of = re.search(r"--bench-json (\S+)", rec.get("command") or "")
        what, ref = ((f"`{study}` of " + (f"`{of.group(1)}`" if of else "the bench"), "bench") if bench
                     else (f"trial {trial} of `{study}`", "trial"))
        out.append(f"{model}: {what}, frozen and rebuilt by build.sh, run by evaluate.py "
                   f"({ev.get('harness') or cs[0].get('harness') or '-'} harness): "
                   f"{sum(1 for c in cs if c.get('within'))}/{len(cs)} shapes within {tol_s} of the {ref}'s "
                   f"latency, the largest deviation {dev * 100:.2f}%.\n\n" + table(
                       ["shape", f"{ref} ms", "build.sh ms", f"build.sh / {ref}", f"within {tol_s}",
                        "Good (rebuilt)", "a0", "r0", "a1", "r1"], rows))
    srcs = ", ".join(f"`{src.name(k)}`" for k in (key, eval_key) if src.data.get(k))
    verdict = {True: "every shape within the tolerance", False: "**not** every shape within the tolerance",
               None: "no overall verdict recorded"}[rec.get("all_within")]
    libs = ev.get("plugin_libs") or []
    loaded = ("; evaluate.py loaded the plugin library " + ", ".join(
        f"`{lib.rsplit('/', 1)[-1]}` (from `{lib.rsplit('/', 1)[0] or '/'}`)" for lib in libs) if libs else "")
    return (f"From {srcs} (`{rec.get('command') or '-'}`): {verdict}{loaded}. Errors a0, r0, a1, r1 are "
            "evaluate.py's for the rebuilt plan.\n\n" + "\n\n".join(out))


NO_IMPL = re.compile(r"Could not find any implementation for node (\{ForeignNode\[.*?\]\})")


def _no_impl_entry(src: Sources) -> str | None:
    rec = src.data.get("study-decoder-contest")
    hits = [(st, t) for st in (rec or {}).get("studies", []) for t in st.get("trials", [])
            if t["state"] == "FAIL" and NO_IMPL.search(str(t.get("fail_reason")))]
    if not hits:
        return None
    node = NO_IMPL.search(hits[0][1]["fail_reason"]).group(1)
    code = re.search(r"Error Code \d+: [A-Za-z ]+", hits[0][1]["fail_reason"])
    plans = [(t.get("user_attrs") or {}).get("plan") or "-" for _, t in hits]
    pinned = sorted({k.split(".")[-1] for _, t in hits for k, v in (t.get("params") or {}).items()
                     if k.startswith("prec.") and v == "fp32"})
    passes = [{k[5:] for k, v in (t.get("params") or {}).items() if k.startswith("pass.") and v} for _, t in hits]
    all_passes = [{k[5:] for k in (t.get("params") or {}) if k.startswith("pass.")} for _, t in hits]
    over = ("every pass" if all(p == a for p, a in zip(passes, all_passes))
            else "passes " + ", ".join(sorted(set.intersection(*passes))))
    text = (f"- **FP32 pin of the decoder's scoring group inside Myelin**: `Could not find any implementation for "
            f"node {node}`" + (f" ({code.group(0).strip()})" if code else "") + f" in trials "
            + ", ".join(str(t["number"]) for _, t in hits) + f" of `{src.name('study-decoder-contest')}`: rules "
            "plans " + ", ".join(f"`{p}`" for p in plans) + f" (groups pinned FP32 across them: {', '.join(pinned)}), over "
            f"{over}.")
    plug = src.data.get("plugins")
    if plug:
        built = [c for c in configs(src, ("plugins",))["decoder"].values() if "norm32" in c.label
                 and build_of(plug, c).get("status") == "built"]
        ref = set(next(iter(built[0].cases.values())).get("passes") or []) if built else set()
        extra = sorted(set.intersection(*passes) - ref) if ref else []
        text += (" The plugins bench's decoder with the output pinned FP32 too (`norm32`) on the reference passes "
                 "built: " + ", ".join(f"`{c.label}` ({c.good}/{len(c.cases)} Good)" for c in built)
                 + f" (`{src.name('plugins')}`), the last with our LogSoftmax plugin in the scoring group"
                 + (f"; the failing trials also ran {', '.join(extra)}" if extra else "") + ".")
    return text + " Reproduced with only the output group pinned: `bench/diag/trt86_graphs.py` case `scoring_output_only` (`bench/results/diag-graphs-h200.json`)."


def _layernorm_entry(src: Sources) -> str | None:
    log = src.data.get("plugins-gputests")
    if not log:
        return None
    hit = next(((name, line) for name, line in log["code"].items() if "LayerNorm" in line and "not in" in line), None)
    if hit is None:
        return None
    trt = (src.data.get("plugins") or {}).get("tensorrt") or "this TensorRT"
    return (f"- **The LayerNorm v1 plugin is still registered by the {trt} pip wheel** although the OSS "
            f"changelog says it was removed: `{hit[0]}` failed on `{hit[1]}` (`{src.name('plugins-gputests')}`, "
            f"{log['summary'].split(' in ')[0]}). The test and `plugins/README.md` now say so, and the `layernorm_plugin` rewrite "
            "is offered wherever the creator loads.")


def bugs(src: Sources) -> str:
    entries = [x for x in (_no_impl_entry(src), _layernorm_entry(src)) if x]
    return "\n".join(entries) or "_No new failure in the study export or the plugin GPU tests._"


def blocks(src: Sources, specs: dict) -> dict[str, str]:
    """name -> Markdown of every generated README block."""
    out = {"environment": T.environment(src), "summary-encoder": T.summary(src, "encoder"),
           "summary-decoder": T.summary(src, "decoder"), "latency-shapes": T.latency_shapes(src),
           "passes": T.passes(src), "layers": T.layer_table(specs), "accuracy": T.accuracy(src), "diag": T.diag(src),
           "study": T.study(src), "plugins": plugins(src), "plugin-layers": T.layer_table(specs, "plugin-layers"),
           "precision": precision(src), "precision-serving-h100": precision(src, "precision@h100", with_plugins=False),
           "precision-plans-h100": plans_block(src),
           "precision-accuracy": precision_accuracy(src), "reproduce": reproduce(src),
           "reproduce-plugins": reproduce(src, "reproduce-plugins", "reproduce-plugins-eval"),
           "reproduce-decoder-contest": reproduce(src, "reproduce-decoder-contest", "reproduce-eval-decoder-contest"),
           "decoder-study": decoder_study(src), "bugs-found": bugs(src),
           "decoder-serving-study": decoder_study(src, "study-decoder-serving"),
           "reproduce-decoder-serving": reproduce(src, "reproduce-decoder-serving", "reproduce-eval-decoder-serving"),
           "serving-study-shapes": serving_shapes(src), "torch-compile-shapes": torch_compile_shapes(src),
           # the tenth session's full layouts run, on an H100 (its torch rows are in the file)
           "summary-encoder-h100": T.summary(src, "encoder", (H100,)),
           "summary-decoder-h100": T.summary(src, "decoder", (H100,)),
           "torch-compile-shapes-h100": torch_compile_shapes(src, H100), "workers-ab": workers_ab(src),
           "workers-ab-2v1": workers_ab(src, "workers-ab-2v1")}
    out.update({f"fig-{n}": T.figure(n, *specs[n]) for n in FIGURES})
    return out
