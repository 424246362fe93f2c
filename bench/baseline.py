"""Naive-baseline TensorRT numbers for both models on every test shape (run with the TensorRT Python).

    python bench/baseline.py --work WORK --out OUT_DIR [--models encoder,decoder] [--grid 1x16,...]
                             [--modes robust,contest] [--torch FILE] [--skip-build]

Builds the baseline config (plain FP32, TF32 off, one profile over the grid) of each
model from WORK/onnx/<model>.onnx into WORK/plans/, evaluates it on WORK/data, and
writes OUT_DIR/baseline-<gpu>.json (e.g. baseline-h100.json) after every build and
every measured case, so a command killed by a time limit keeps what it measured; runs
split by --models / --modes add to the same file (--fresh starts over). The
torch baselines (bench/torch_baselines.py, another Python) are merged in from --torch
or OUT_DIR/torch-baselines.json when present.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import RESULTS, base_record, ensure_repo_on_path, gpu_slug, write_json  # noqa: E402

ensure_repo_on_path()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/baseline.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="work", help="work folder with onnx/ and data/ (default work)")
    p.add_argument("--out", default=str(RESULTS), help=f"folder for baseline-<gpu>.json (default {RESULTS})")
    p.add_argument("--models", default="encoder,decoder", help="comma list (default encoder,decoder)")
    p.add_argument("--grid", help="BATCHxFRAMES comma list (default: every test case found)")
    p.add_argument("--modes", default="robust,contest", help="timing modes, comma list (default robust,contest)")
    p.add_argument("--runs", type=int, help="timed runs per case (default: the mode's)")
    p.add_argument("--warmup", type=int, help="warm-up runs per case (default: the mode's)")
    p.add_argument("--torch", help="torch baselines JSON to merge (default OUT/torch-baselines.json if present)")
    p.add_argument("--skip-build", action="store_true", help="reuse WORK/plans/baseline-<model>.plan")
    p.add_argument("--fresh", action="store_true", help="start a new result file instead of adding to it")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from engine.build import build_engine
    from engine.config import baseline
    from engine.errors import EngineError
    from engine.trt_compat import gpu_name
    from evaluate import EvaluateError, case_row, evaluate_plan, model_summary
    from workload.data import parse_grid

    work, out_dir = Path(args.work), Path(args.out)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    grid = parse_grid(args.grid) if args.grid else None
    gpu = gpu_name()
    path = out_dir / f"baseline-{gpu_slug(gpu)}.json"
    record: dict[str, Any] = {**base_record(gpu), "kind": "tensorrt-baseline", "work": str(work), "models": {}}
    if path.is_file() and not args.fresh:
        # Runs split by model or mode (10-minute command limit) add up in one file.
        try:
            record["models"] = json.loads(path.read_text()).get("models", {})
        except ValueError:
            pass

    torch_json = Path(args.torch) if args.torch else out_dir / "torch-baselines.json"
    if torch_json.is_file():
        try:
            record["torch_baselines"] = json.loads(torch_json.read_text())
        except ValueError as exc:
            record["torch_baselines_error"] = f"{torch_json}: {exc}"
    write_json(path, record)
    print(f"writing {path}", flush=True)

    status = 0
    for model in models:
        entry = record["models"].setdefault(model, {})
        entry.setdefault("modes", {})
        entry.pop("error", None)
        plan = work / "plans" / f"baseline-{model}.plan"
        onnx = work / "onnx" / f"{model}.onnx"
        try:
            if not args.skip_build or not plan.is_file():
                print(f"== build {model} baseline", flush=True)
                report = build_engine(onnx, baseline(model), plan,
                                      timing_cache=work / "plans" / f"baseline-{model}.timing.cache",
                                      log_path=work / "plans" / f"baseline-{model}.build.log")
                entry["build"] = report.to_dict()
                print(f"   {report.build_s:.1f} s, {report.plan_bytes / 2**20:.1f} MiB", flush=True)
            entry["plan"] = str(plan)
            write_json(path, record)
            for mode in modes:
                rows: list[dict[str, Any]] = []
                entry["modes"][mode] = {"cases": rows}

                def on_case(case, rows=rows):
                    rows.append(case_row(case))
                    r = rows[-1]
                    print(f"   {model} {mode} {r['batch']}x{r['length']}: {r['latency_ms']:.3f} ms "
                          f"{'Good' if r['good'] else 'Bad'}", flush=True)
                    write_json(path, record)

                t0 = time.monotonic()
                cases = evaluate_plan(model, plan, work / "data", grid=grid, mode=mode, runs=args.runs,
                                      warmup=args.warmup, strict=grid is not None, on_case=on_case)
                entry["modes"][mode].update(model_summary(cases), eval_s=time.monotonic() - t0)
                write_json(path, record)
        except (EngineError, EvaluateError, OSError, ValueError) as exc:
            entry["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"error: {model}: {entry['error']}", file=sys.stderr, flush=True)
            write_json(path, record)
            status = 1
    record["finished"] = True
    write_json(path, record)
    print(f"wrote {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
