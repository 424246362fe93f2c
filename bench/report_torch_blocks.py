"""README block of the run with torch.compile at every shape: the naive engine, the fastest all-Good TensorRT
engine of each harness and PyTorch (eager, torch.compile reduce-overhead and max-autotune) per shape, all from
one run of bench/layouts.py with bench/torch_baselines.py beside it (the layouts file, its torch rows merged in).

Like bench.report_tables, every number is read from a committed bench/results file; the rows are
grouped and the best engines picked by bench.report_data (configs, grid, pick), as for the layouts table.
"""
from __future__ import annotations

from bench.report_data import NAIVE, TORCH_EAGER, Config, Sources, configs, grid, pick, shape_key
from bench.report_tables import table

TC = "layouts"      # the full layouts run (2026-12-07, ninth session) has every torch variant at every shape
TORCH_RO = "torch.compile reduce-overhead fp16 dynamic"
TORCH_MA = "torch.compile max-autotune fp16 dynamic"


def run_configs(src: Sources, key: str = TC) -> dict[str, dict[str, Config]]:
    """model -> label -> Config of the run's file alone (its torch rows are merged in already)."""
    return configs(src, (key,))


def wins(engine: Config, other: Config) -> tuple[int, int, list[str]]:
    """(shapes where engine is faster, shapes both have, the shapes where it is not)."""
    both = sorted(set(engine.cases) & set(other.cases))
    lose = [shape_key(*s) for s in both if engine.cases[s]["latency_ms"] >= other.cases[s]["latency_ms"]]
    return len(both) - len(lose), len(both), lose


def _cell(c: dict | None) -> str:
    return "-" if c is None else f"{c['latency_ms']:.3f}" + ("" if c.get("good") else "*")


def _model_table(model: str, cfgs: dict[str, Config]) -> str:
    shapes = grid(cfgs)
    roles = pick(cfgs)
    best = {h: roles[f"best {h}"] for h in ("contest", "serving")}
    cols = [(NAIVE, cfgs.get(NAIVE))] + [(f"best {h}: {c.label}", c) for h, c in best.items() if c] + [
        (lab, cfgs[lab]) for lab in (TORCH_EAGER, TORCH_RO, TORCH_MA) if lab in cfgs]
    rows = [[shape_key(*s), *(_cell(c.cases.get(s) if c else None) for _, c in cols)] for s in shapes]
    counts = [len(c.cases) if c else 0 for _, c in cols]
    sums = [c.sum_ms if c else 0.0 for _, c in cols]
    rows.append(["sum", *(f"{x:.3f}" + ("" if n == len(shapes) else f" ({n} shapes)") for x, n in zip(sums, counts))])
    base = sums[0] if counts[0] == len(shapes) and sums[0] else None
    rows.append([f"vs {NAIVE}", *(f"{x / base:.2f}x" if base and n == len(shapes) else "-"
                                  for x, n in zip(sums, counts))])
    lines = []
    for h, c in best.items():
        for torch_label in (TORCH_MA, TORCH_RO):
            if c and torch_label in cfgs:
                w, n, lose = wins(c, cfgs[torch_label])
                lines.append(f"- best {h} engine `{c.label}` faster than `{torch_label}` at {w} of {n} shapes"
                             + (f" (not at {', '.join(lose)})" if lose else ""))
    missing = [lab for lab in (NAIVE, TORCH_MA) if lab not in cfgs]
    return (f"**{model}**\n\n" + table(["shape (batch x frames)", *(h for h, _ in cols)], rows)
            + ("\n\n" + "\n".join(lines) if lines else "")
            + (f"\n\nNo row of {', '.join(f'`{m}`' for m in missing)} in the file." if missing else ""))


def torch_compile_shapes(src: Sources, key: str = TC) -> str:
    rec = src.data.get(key)
    if rec is None:
        return f"_Not made: {src.missing(key)}._"
    cfgs = run_configs(src, key)
    models = [m for m, cs in cfgs.items() if cs]
    if not models:
        return f"_`{src.name(key)}` has no measured row._"
    errs = rec.get("torch_errors") or []
    return (f"From `{src.name(key)}` (one run on one {src.gpu_of(key).upper()}, {(rec.get('date') or '')[:10]}: the "
            f"engines by `{rec.get('command', '-')}`, PyTorch {rec.get('torch') or '-'} timed after them by "
            "`bench/torch_baselines.py`, its compiles made while the engines built). Latency in ms per shape, `*` = "
            "a Bad case; `best <harness>`: the fastest TensorRT configuration of the run that is Good at every shape "
            "under that harness; torch.compile compiled with `dynamic=True` (one graph per model for batch 1 and one for "
            "batch > 1) and a CUDA graph per shape.\n\n" + "\n\n".join(_model_table(m, cfgs[m]) for m in models)
            + (f"\n\n{len(errs)} torch rows have no time (first: `{errs[0].get('label')}` "
               f"{errs[0].get('bs')}x{errs[0].get('sl')}: {str(errs[0].get('error'))[:120]})." if errs else ""))
