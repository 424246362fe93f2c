"""Does build.sh reproduce the study? The frozen trial's per-shape latencies vs evaluate.py's on the rebuilt plans.

    python3 bench/reproduce.py --study-json STUDY.json --configs CONFIG_DIR --evaluate-json EVAL.json
        --out OUT.json [--tolerance 0.10]
    python3 bench/reproduce.py --bench-json BENCH.json --label LABEL --evaluate-json EVAL.json --out OUT.json

The second form compares with a bench file's rows of one label (e.g. a plugins-suite engine that
build.sh rebuilt from the config the bench wrote) instead of a study trial.

STUDY.json is `search export`'s file, CONFIG_DIR holds `search freeze`'s <model>.yaml (its header
names the study and the trial), EVAL.json is `evaluate.py --json` on the plans build.sh wrote.
Writes one row per (model, shape, source) in the bench/results format ("trial N" and "build.sh"
labels) plus a `compare` list with the ratio rebuilt/trial per shape and whether it is within the
tolerance. Exit status 0 when every shape is within it, 1 when one is not, 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import base_record, write_json  # noqa: E402

HEADER = re.compile(r"study (\S+) in .*?, trial (\d+):")


class ReproduceError(Exception):
    """Bad input: one line, exit 2."""


def frozen_trial(config: Path) -> tuple[str, int]:
    """(study name, trial number) from a frozen config's comment header."""
    for line in config.read_text().splitlines():
        if not line.startswith("#"):
            break
        m = HEADER.search(line)
        if m:
            return m.group(1), int(m.group(2))
    raise ReproduceError(f"{config}: no 'study ... trial N:' header (not written by search freeze?)")


def _attr(value: Any) -> Any:
    """Exported user attributes may be JSON values or their Python repr (older exports)."""
    if isinstance(value, str) and value[:1] in "[{":
        import ast
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return json.loads(value)
    return value


def trial_cases(study_json: dict, study: str, number: int) -> tuple[str, list[dict]]:
    for st in study_json.get("studies", []):
        if st.get("study") != study:
            continue
        for t in st.get("trials", []):
            if t.get("number") == number:
                cases = _attr(t.get("user_attrs", {}).get("cases"))
                if not cases:
                    raise ReproduceError(f"trial {number} of {study} has no per-shape cases")
                return st.get("harness", "?"), cases
        raise ReproduceError(f"study {study} has no trial {number}")
    raise ReproduceError(f"no study {study} in the study export")


def bench_cases(bench_json: dict, model: str, label: str) -> tuple[str, list[dict]]:
    rows = [r for r in bench_json.get("rows", []) if r.get("model") == model and r.get("label") == label]
    if not rows:
        raise ReproduceError(f"the bench file has no {model} rows labelled {label!r}")
    return rows[0]["harness"], [{"batch": r["bs"], "length": r["sl"], "latency_ms": r["latency_ms"],
                                 "good": r["good"]} for r in rows]


def compare(study_json: dict | None, configs: Path | None, evaluation: dict, tolerance: float,
            bench: tuple[dict, str] | None = None) -> tuple[list[dict], list[dict]]:
    rows, out = [], []
    for model, result in evaluation.get("models", {}).items():
        if bench is not None:
            study, number = bench[1], "bench"
            harness, cases = bench_cases(bench[0], model, bench[1])
        else:
            config = configs / f"{model}.yaml"
            if not config.is_file():
                raise ReproduceError(f"no frozen config {config} for model {model}")
            study, number = frozen_trial(config)
            harness, cases = trial_cases(study_json, study, number)
        if evaluation.get("harness") and evaluation["harness"] != harness:
            raise ReproduceError(f"{model}: evaluate.py ran the {evaluation['harness']} harness, "
                                 f"the trial was measured with {harness}")
        trial = {(c["batch"], c["length"]): c for c in cases}
        for c in result.get("cases", []):
            key = (c["batch"], c["length"])
            base = dict(model=model, harness=harness, layout=None, precision=None, cuda_graph=None,
                        bs=key[0], sl=key[1])
            rows.append({**base, "label": "build.sh", "latency_ms": c["latency_ms"], "good": c["good"],
                         **{k: c.get(k) for k in ("a0", "r0", "a1", "r1")}, "build_s": None})
            if key not in trial:
                out.append({"model": model, "bs": key[0], "sl": key[1], "trial_ms": None,
                            "rebuilt_ms": c["latency_ms"], "ratio": None, "within": False})
                continue
            t = trial[key]
            rows.append({**base, "label": f"trial {number}" if bench is None else study, "latency_ms": t["latency_ms"], "good": t["good"],
                         "a0": None, "r0": None, "a1": None, "r1": None, "build_s": None,
                         "worst_ratio": t.get("worst_ratio")})
            ratio = c["latency_ms"] / t["latency_ms"]
            out.append({"model": model, "study": study, "trial": number, "bs": key[0], "sl": key[1],
                        "trial_ms": t["latency_ms"], "rebuilt_ms": c["latency_ms"], "ratio": ratio,
                        "within": abs(ratio - 1) <= tolerance, "good": bool(c["good"])})
    return rows, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/reproduce.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--study-json", help="search export's file (with --configs)")
    p.add_argument("--configs", help="search freeze's folder")
    p.add_argument("--bench-json", help="a bench result file (with --label) instead of a study")
    p.add_argument("--label", help="the bench rows' label to compare with")
    p.add_argument("--evaluate-json", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tolerance", type=float, default=0.10)
    args = p.parse_args(argv)
    try:
        if not 0 < args.tolerance < 1:
            raise ReproduceError(f"--tolerance {args.tolerance}: expected a fraction in (0, 1)")
        if bool(args.bench_json) == bool(args.study_json) or bool(args.bench_json) != bool(args.label) \
                or bool(args.study_json) != bool(args.configs):
            raise ReproduceError("give --study-json with --configs, or --bench-json with --label")
        try:
            source = json.loads(Path(args.study_json or args.bench_json).read_text())
            evaluation = json.loads(Path(args.evaluate_json).read_text())
        except (OSError, ValueError) as exc:
            raise ReproduceError(f"cannot read the inputs: {exc}") from None
        if args.bench_json:
            rows, cmp = compare(None, None, evaluation, args.tolerance, bench=(source, args.label))
        else:
            rows, cmp = compare(source, Path(args.configs), evaluation, args.tolerance)
    except ReproduceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    record = {**base_record(evaluation.get("gpu")), "kind": "reproduce", "tolerance": args.tolerance,
              "rows": rows, "compare": cmp, "all_within": bool(cmp) and all(c["within"] for c in cmp)}
    write_json(args.out, record)
    for c in cmp:
        r = f"{c['ratio']:.3f}" if c["ratio"] is not None else "-"
        print(f"{c['model']:<8} {c['bs']:>2}x{c['sl']:<5} trial {c.get('trial_ms') or float('nan'):8.3f} ms  "
              f"build.sh {c['rebuilt_ms']:8.3f} ms  ratio {r}  {'ok' if c['within'] else 'OUTSIDE'}")
    print(f"{'all within' if record['all_within'] else 'NOT all within'} {args.tolerance:.0%} -> {args.out}")
    return 0 if record["all_within"] else 1


if __name__ == "__main__":
    sys.exit(main())
