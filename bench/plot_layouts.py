"""README's layout tables and latency-vs-shape plots, from a committed layouts-<gpu>.json.

    python3 bench/plot_layouts.py [--results bench/results] [--gpu h200] [--no-plots]

Prints, per model, the summary (sum over the judged grid, Good cases, ratio to the naive
contest-harness engine) and a per-shape latency table ('*' marks a Bad case), and writes
layouts-<gpu>-<model>.png (needs matplotlib; the tables need nothing beyond the standard library).
A quick look at one layouts file; README's tables and figures come from `python3 -m bench.report`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

# The configurations the README compares, in legend order (labels of bench/layouts.py and
# bench/torch_baselines.py).
SHOWN = ("naive fp32 contest", "single+passes fds_off fp32 contest", "per_batch fp32 serving",
         "per_batch fp32 serving-nographs", "per_batch fp16 serving", "buckets fp32 serving",
         "torch eager fp32", "torch.compile reduce-overhead fp16")


def load_rows(path: Path) -> dict:
    return json.loads(path.read_text())


def grid_of(rows: list[dict], model: str) -> list[tuple[int, int]]:
    return sorted({(r["bs"], r["sl"]) for r in rows if r["model"] == model})


def table(rows: list[dict], model: str, labels=SHOWN) -> str:
    shapes = grid_of(rows, model)
    cell = {(r["label"], r["bs"], r["sl"]): r for r in rows if r["model"] == model}
    head = "| configuration | " + " | ".join(f"{b}x{t}" for b, t in shapes) + " | sum |"
    lines = [head, "|" + "---|" * (len(shapes) + 2)]
    for label in labels:
        got = [cell.get((label, b, t)) for b, t in shapes]
        if not any(got):
            continue
        vals = [f"{g['latency_ms']:.2f}{'' if g['good'] else '*'}" if g else "-" for g in got]
        total = sum(g["latency_ms"] for g in got if g)
        complete = all(got)
        lines.append(f"| {label} | " + " | ".join(vals) + f" | {total:.1f}{'' if complete else ' (partial)'} |")
    return "\n".join(lines)


def summary(record: dict, model: str) -> str:
    lines = ["| configuration | cases | Good | sum ms | vs naive contest |", "|---|---|---|---|---|"]
    for s in record["summary"]:
        if s["model"] == model:
            ratio = f"{s['vs_naive']:.3f}x" if s["vs_naive"] is not None else "-"
            lines.append(f"| {s['label']} | {s['cases']} | {s['good']} | {s['sum_ms']:.2f} | {ratio} |")
    return "\n".join(lines)


def plot(rows: list[dict], model: str, out: Path, gpu: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = grid_of(rows, model)
    x = list(range(len(shapes)))
    fig, ax = plt.subplots(figsize=(10, 5))
    for label in SHOWN:
        pts = [(i, r["latency_ms"], r["good"]) for i, s in enumerate(shapes) for r in rows
               if r["model"] == model and r["label"] == label and (r["bs"], r["sl"]) == s]
        if not pts:
            continue
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        bad = [p for p in pts if not p[2]]
        if bad:     # Bad cases: hollow markers
            ax.scatter([p[0] for p in bad], [p[1] for p in bad], s=90, facecolors="white",
                       edgecolors=line.get_color(), zorder=3)
    ax.set_xticks(x, [f"{b}x{t}" for b, t in shapes], rotation=45)
    ax.set_yscale("log")
    ax.set_xlabel("batch x frames (the judged grid)")
    ax.set_ylabel("latency, ms (log)")
    ax.set_title(f"{model} on {gpu}: latency per shape (hollow = Bad case)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/plot_layouts.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--gpu", default="h200")
    p.add_argument("--no-plots", action="store_true")
    args = p.parse_args(argv)
    path = Path(args.results) / f"layouts-{args.gpu}.json"
    record = load_rows(path)
    for model in ("encoder", "decoder"):
        print(f"\n### {model}\n\n{summary(record, model)}\n\n{table(record['rows'], model)}")
        if not args.no_plots:
            out = plot(record["rows"], model, Path(args.results) / f"layouts-{args.gpu}-{model}.png", record["gpu"])
            print(f"\n-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
