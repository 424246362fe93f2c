"""evaluate.py's JSON of several engines measured in one run -> one result file in the rows convention.

    python3 bench/eval_rows.py --out bench/results/own-workload-rows-h200.json \
        --run baseline WORK/own/eval-baseline.json baseline \
        --run tuned WORK/own/eval-tuned.json WORK/own/configs/tinycnn.yaml

Each --run is LABEL EVALUATE_JSON CONFIG_YAML (or the word baseline: `engine build --baseline`): the
config says the row's layout and precision (engine.config.precision_class). One row per (model, label,
shape) with the keys of ../shared/conventions/results.md (engine.evaluation.convention_rows); `build_s` is that of the build report
beside the plan (PLAN.report.json), else null. The header (gpu, tensorrt, date) is the first run's;
runs measured on another GPU or TensorRT are refused: they would not compare.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from bench_common import write_json  # noqa: E402


class EvalRowsError(Exception):
    """A bad --run: the message is the one line printed."""


def _load(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise EvalRowsError(f"{what} {path}: {exc}") from None


def rows_of(label: str, record: dict, config) -> list[dict]:
    from engine.config import precision_class
    from engine.evaluation import convention_rows, plan_build_facts

    rows = []
    for model, m in (record.get("models") or {}).items():
        build_s = plan_build_facts(m["plan"]).get("build_s") if m.get("plan") else None
        rows += convention_rows(model, label, m.get("cases") or [], layout=config.layout,
                                precision=precision_class(config), build_s=build_s)
    if not rows:
        raise EvalRowsError(f"--run {label}: the evaluate JSON has no measured cases")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", nargs=3, action="append", required=True, metavar=("LABEL", "EVAL_JSON", "CONFIG"))
    p.add_argument("--out", required=True)
    p.add_argument("--workload", default=None, help="workload spec YAML of a model of your own (its configs name it)")
    args = p.parse_args(argv)
    from engine.config import BuildConfig, ConfigError
    from workload import registry
    from workload.errors import OneLineError

    try:
        if args.workload:
            try:
                registry.resolve(args.workload)
            except OneLineError as exc:
                raise EvalRowsError(f"--workload {args.workload}: {exc}") from None
        header, rows = None, []
        for label, eval_json, config_path in args.run:
            record = _load(eval_json, f"--run {label}: evaluate JSON")
            try:
                models = list(record.get("models") or {}) or ["?"]
                config = (BuildConfig(model=models[0]) if config_path == "baseline"      # engine build --baseline
                          else BuildConfig.load(config_path))
            except (OSError, ConfigError) as exc:
                raise EvalRowsError(f"--run {label}: config {config_path}: {exc}") from None
            here = {k: record.get(k) for k in ("gpu", "tensorrt")}
            if header is None:
                header = {**here, "date": record.get("date")}
            elif here != {k: header[k] for k in here}:
                raise EvalRowsError(f"--run {label} was measured on {here}, the first run on "
                                    f"{ {k: header[k] for k in here} }: not one run")
            rows += rows_of(label, record, config)
    except EvalRowsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = {**header, "torch": None, "command": "python3 bench/eval_rows.py " + " ".join(sys.argv[1:] if argv is None
                                                                                      else argv), "rows": rows}
    write_json(Path(args.out), out)
    print(f"{len(rows)} rows ({len(args.run)} runs) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
