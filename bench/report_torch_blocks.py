"""README block of the torch.compile run: the naive engine, the fastest all-Good TensorRT engine of each
harness and PyTorch (eager, torch.compile reduce-overhead and max-autotune) per shape, all from one run
of bench/layouts.py with bench/torch_baselines.py beside it (one file, one GPU, one session).

Like bench.report_tables, every number is read from a committed bench/results file.
"""
from __future__ import annotations

from bench.report_data import Sources, shape_key
from bench.report_tables import table

TC = "layouts-torch-compile"
NAIVE = "naive fp32 contest"
EAGER = "torch eager fp32"
TORCH_RO = "torch.compile reduce-overhead fp16 dynamic"
TORCH_MA = "torch.compile max-autotune fp16 dynamic"

Cases = dict[tuple[int, int], dict]


def by_label(rec: dict, model: str) -> dict[str, Cases]:
    """label -> (batch, frames) -> row, for one model's measured rows."""
    out: dict[str, Cases] = {}
    for r in rec.get("rows") or []:
        if r.get("model") == model and r.get("latency_ms") is not None:
            out.setdefault(r["label"], {})[(r["bs"], r["sl"])] = r
    return out


def shapes_of(groups: dict[str, Cases]) -> list[tuple[int, int]]:
    return sorted({s for cs in groups.values() for s in cs})


def best_engine(groups: dict[str, Cases], harness: str, n: int) -> str | None:
    """The TensorRT label of `harness` with the least sum among those Good at all n shapes."""
    ok = [(sum(c["latency_ms"] for c in cs.values()), label) for label, cs in groups.items()
          if len(cs) == n and all(c.get("good") for c in cs.values())
          and all(c.get("harness") == harness for c in cs.values())]
    return min(ok)[1] if ok else None


def wins(engine: Cases, other: Cases) -> tuple[int, int, list[str]]:
    """(shapes where engine is faster, shapes both have, the shapes where it is not)."""
    both = sorted(set(engine) & set(other))
    lose = [shape_key(*s) for s in both if engine[s]["latency_ms"] >= other[s]["latency_ms"]]
    return len(both) - len(lose), len(both), lose


def _cell(c: dict | None) -> str:
    return "-" if c is None else f"{c['latency_ms']:.3f}" + ("" if c.get("good") else "*")


def _model_table(model: str, groups: dict[str, Cases]) -> str:
    shapes = shapes_of(groups)
    best = {h: best_engine(groups, h, len(shapes)) for h in ("contest", "serving")}
    cols = [(NAIVE, NAIVE)] + [(f"best {h}: {lab}", lab) for h, lab in best.items() if lab] + [
        (lab, lab) for lab in (EAGER, TORCH_RO, TORCH_MA) if lab in groups]
    rows = [[shape_key(*s), *(_cell(groups.get(lab, {}).get(s)) for _, lab in cols)] for s in shapes]
    sums = [sum(c["latency_ms"] for c in groups.get(lab, {}).values()) for _, lab in cols]
    counts = [len(groups.get(lab, {})) for _, lab in cols]
    rows.append(["sum", *(f"{x:.3f}" + ("" if n == len(shapes) else f" ({n} shapes)") for x, n in zip(sums, counts))])
    base = sums[0] if counts[0] == len(shapes) and sums[0] else None
    rows.append([f"vs {NAIVE}", *(f"{x / base:.2f}x" if base and n == len(shapes) else "-"
                                  for x, n in zip(sums, counts))])
    lines = []
    for h, lab in best.items():
        for torch_label in (TORCH_MA, TORCH_RO):
            if lab and torch_label in groups:
                w, n, lose = wins(groups[lab], groups[torch_label])
                lines.append(f"- best {h} engine `{lab}` faster than `{torch_label}` at {w} of {n} shapes"
                             + (f" (not at {', '.join(lose)})" if lose else ""))
    missing = [lab for lab in (NAIVE, TORCH_MA) if lab not in groups]
    return (f"**{model}**\n\n" + table(["shape (batch x frames)", *(h for h, _ in cols)], rows)
            + ("\n\n" + "\n".join(lines) if lines else "")
            + (f"\n\nNo row of {', '.join(f'`{m}`' for m in missing)} in the file." if missing else ""))


def torch_compile_shapes(src: Sources, key: str = TC) -> str:
    rec = src.data.get(key)
    if rec is None:
        return f"_Not made: {src.missing(key)}._"
    models = [m for m in ("encoder", "decoder") if by_label(rec, m)]
    if not models:
        return f"_`{src.name(key)}` has no measured row._"
    errs = rec.get("torch_errors") or []
    return (f"From `{src.name(key)}` (one run on one {src.gpu_of(key).upper()}, {(rec.get('date') or '')[:10]}: the "
            f"engines by `{rec.get('command', '-')}`, PyTorch {rec.get('torch') or '-'} timed after them by "
            "`bench/torch_baselines.py`, its compiles made while the engines built). Latency in ms per shape, `*` = "
            "a Bad case; `best <harness>`: the fastest TensorRT configuration of the run that is Good at every shape "
            "under that harness; torch.compile compiled once per model (`dynamic=True`) with a CUDA graph per "
            "shape.\n\n" + "\n\n".join(_model_table(m, by_label(rec, m)) for m in models)
            + (f"\n\n{len(errs)} torch rows have no time (first: `{errs[0].get('label')}` "
               f"{errs[0].get('bs')}x{errs[0].get('sl')}: {str(errs[0].get('error'))[:120]})." if errs else ""))


def latency_spec(src: Sources, key: str = TC):
    """The figure of the run (drawn like `latency`): per model, latency per shape of the table's columns."""
    rec = src.data.get(key)
    if rec is None:
        return None, src.missing(key)
    panels = []
    for model in ("encoder", "decoder"):
        groups = by_label(rec, model)
        if not groups:
            continue
        shapes = shapes_of(groups)
        roles = [("naive", NAIVE)] + [(f"best {h}", best_engine(groups, h, len(shapes))) for h in ("contest", "serving")]
        roles += [("torch eager", EAGER), ("torch.compile", TORCH_MA)]
        series = [{"role": role, "label": lab,
                   "latency_ms": [groups[lab][s]["latency_ms"] if s in groups[lab] else None for s in shapes],
                   "good": [bool(groups[lab][s].get("good")) if s in groups[lab] else None for s in shapes]}
                  for role, lab in roles if lab in groups]
        panels.append({"model": model, "shapes": [shape_key(*s) for s in shapes], "series": series})
    return {"title": f"One run on {src.gpu_of(key).upper()}: the best engines and torch.compile max-autotune "
                     "(log scale; hollow marker = Bad case; a line stops where a shape has no time)",
            "sources": [src.name(key)], "panels": panels}, None
