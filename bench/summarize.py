"""Markdown tables from the committed GPU result files (what README's numbers are copied from).

    python3 bench/summarize.py [--results bench/results] [--gpu h200]

Reads baseline-<gpu>.json (bench/baseline.py), torch-baselines-<gpu>.json
(bench/torch_baselines.py), study-<gpu>.json (`python -m search export`) and
reproduce-<gpu>.json (evaluate.py on the plans build.sh rebuilt from the frozen
configs); prints per-shape latency tables and the study's trial table. numpy-free.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def shape(c: dict) -> str:
    return f"{c['batch']}x{c['length']}"


def latency_table(models: dict[str, dict[str, list[dict]]]) -> str:
    """models: model -> column name -> cases; one row per (model, shape)."""
    lines = []
    for model, cols in models.items():
        names = list(cols)
        lines.append(f"\n**{model}** (ms; B = Bad)\n")
        lines.append("| shape | " + " | ".join(names) + " |")
        lines.append("|---|" + "---|" * len(names))
        shapes = []
        for cases in cols.values():
            for c in cases:
                if shape(c) not in shapes:
                    shapes.append(shape(c))
        for s in shapes:
            cells = []
            for cases in cols.values():
                c = next((c for c in cases if shape(c) == s), None)
                if c is None or c.get("latency_ms") is None:
                    cells.append("-")
                else:
                    cells.append(f"{c['latency_ms']:.2f}" + ("" if c.get("good", True) else " B"))
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        # a sum only where every shape was measured (torch.compile ran on a few shapes only)
        sums = [f"**{sum(c['latency_ms'] for c in cases):.1f}**" if len(cases) == len(shapes) else "-"
                for cases in cols.values()]
        lines.append("| **sum** | " + " | ".join(sums) + " |")
    return "\n".join(lines)


def torch_cases(rec: dict, model: str, variant: str) -> list[dict]:
    return [r for r in rec["rows"] if r["model"] == model and r["variant"] == variant and "latency_ms" in r]


def study_table(rec: dict) -> str:
    lines = ["| model | trial | seed | objective ms | feasible | build s | eval s | bad shapes |", "|---|---|---|---|---|---|---|---|"]
    build_times: dict[str, list[float]] = {}
    for st in rec["studies"]:
        for t in st["trials"]:
            ua = t.get("user_attrs", {})
            if t["state"] != "COMPLETE":
                lines.append(f"| {st['model']} | {t['number']} | {ua.get('seed', '')} | {t['state']} | | | | |")
                continue
            build_times.setdefault(st["model"], []).append(ua.get("wall_s") or 0.0)
            lines.append(f"| {st['model']} | {t['number']} | {ua.get('seed', '')} | {t['value']:.1f} | "
                         f"{'yes' if t.get('feasible') else 'no'} | {ua.get('build_s', 0):.0f} | "
                         f"{ua.get('eval_s', 0):.0f} | {len(ua.get('bad_cases', []))} |")
    for model, walls in build_times.items():
        lines.append(f"\nmedian trial wall time, {model}: {statistics.median(walls):.0f} s over {len(walls)} trials")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--gpu", default="h200")
    args = p.parse_args()
    res, g = Path(args.results), args.gpu
    base = load(res / f"baseline-{g}.json")
    torch = load(res / f"torch-baselines-{g}.json")
    repro = load(res / f"reproduce-{g}.json")
    study = load(res / f"study-{g}.json")
    cols: dict[str, dict[str, list[dict]]] = {}
    for model in ("encoder", "decoder"):
        cols[model] = {}
        if base and model in base["models"]:
            for mode in ("robust", "contest"):
                cols[model][f"TRT FP32 baseline ({mode})"] = base["models"][model]["modes"].get(mode, {}).get("cases", [])
        if repro and model in repro["models"]:
            cols[model]["build.sh frozen best (robust)"] = repro["models"][model]["cases"]
        if torch:
            for variant in ("eager-fp32", "eager-fp16", "compile"):
                cols[model][f"torch {variant}"] = torch_cases(torch, model, variant)
    src = [f"{n}: {r.get('gpu')}, TensorRT {r.get('tensorrt')}, torch {r.get('torch')}, {r.get('date')}"
           for n, r in (("baseline", base), ("torch", torch), ("reproduce", repro)) if r]
    print("Sources: " + "; ".join(src))
    print(latency_table(cols))
    if study:
        print("\n" + study_table(study))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
