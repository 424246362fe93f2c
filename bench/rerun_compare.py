"""A layouts rerun against the committed layouts file: per configuration, the summed latency ratio.

    python3 bench/rerun_compare.py --rerun WORK/rerun/layouts-h200.json \
        --baseline bench/results/layouts-h200.json --out bench/results/layouts-rerun-h200.json

The output is the rerun's own record (rows in the results convention, baseline and compared
configurations of the same run) plus `comparison`: per (model, label, harness) found in both files,
the sum over the shared shapes then and now, now / then, the Good counts, and `within` (|ratio - 1|
<= --tolerance). Used to check that a refactor left the engines as fast as they were.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import write_json  # noqa: E402


def per_config(rows: list[dict]) -> dict[tuple, dict[tuple, dict]]:
    out: dict[tuple, dict[tuple, dict]] = defaultdict(dict)
    for r in rows:
        if r.get("latency_ms") is not None:
            out[(r["model"], r["label"], r["harness"])][(r["bs"], r["sl"])] = r
    return out


def compare(rerun: dict, baseline: dict, tolerance: float) -> list[dict]:
    now, then = per_config(rerun["rows"]), per_config(baseline["rows"])
    result = []
    for key in sorted(set(now) & set(then)):
        shapes = sorted(set(now[key]) & set(then[key]))
        t_now = sum(now[key][s]["latency_ms"] for s in shapes)
        t_then = sum(then[key][s]["latency_ms"] for s in shapes)
        ratio = t_now / t_then if t_then else None
        result.append({"model": key[0], "label": key[1], "harness": key[2], "shapes": len(shapes),
                       "sum_ms_then": round(t_then, 3), "sum_ms_now": round(t_now, 3),
                       "ratio": None if ratio is None else round(ratio, 4),
                       "good_then": sum(bool(then[key][s].get("good")) for s in shapes),
                       "good_now": sum(bool(now[key][s].get("good")) for s in shapes),
                       "within": ratio is not None and abs(ratio - 1) <= tolerance})
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rerun", required=True, help="layouts.py output of the rerun")
    ap.add_argument("--baseline", required=True, help="the committed layouts file it is compared with")
    ap.add_argument("--out", required=True, help="result file to write")
    ap.add_argument("--tolerance", type=float, default=0.10, help="allowed |now/then - 1| (default 0.10)")
    ap.add_argument("--note", default="", help="what changed between the two runs (kept in the file)")
    args = ap.parse_args(argv)
    docs = []
    for p in (args.rerun, args.baseline):
        try:
            docs.append(json.loads(Path(p).read_text()))
        except (OSError, ValueError) as exc:
            print(f"error: cannot read {p}: {exc}", file=sys.stderr)
            return 2
    rerun, baseline = docs
    comparison = compare(rerun, baseline, args.tolerance)
    if not comparison:
        print(f"error: {args.rerun} and {args.baseline} share no (model, label, harness)", file=sys.stderr)
        return 2
    record = {**rerun, "note": args.note, "tolerance": args.tolerance, "comparison": comparison,
              "compared_with": {"file": args.baseline, "date": baseline.get("date"),
                                "command": baseline.get("command")},
              "all_within": all(c["within"] for c in comparison)}
    write_json(args.out, record)
    for c in comparison:
        print(f"{c['model']} {c['label']} {c['harness']}: {c['sum_ms_then']} -> {c['sum_ms_now']} ms "
              f"({c['ratio']}x, Good {c['good_then']} -> {c['good_now']}/{c['shapes']})"
              f"{'' if c['within'] else '  OUTSIDE tolerance'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
