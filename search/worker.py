"""One isolated trial: prepare the ONNX, build the engine, evaluate it, write result.json.

    python -m search.worker --request work/trials/wenet-encoder-serving/00012/request.json

The request (search/request.py, written by the runner) names the config, ONNX, test
data, trial directory, timing cache and prepared-ONNX cache, and carries the run's
TrialOptions (harness, grid, runs, warm-ups, plugin libraries, keep_plans).
Runs in its own process (search/runner.py) so that a TensorRT crash, hang or
out-of-memory kills one trial, not the study. Writes into the trial directory:
  result.json   objective, constraint, harness, per-case rows (evaluate.case_row: how each case
                ran too), build_s, eval_s, precision counts, sites per pass, the trial options
  build.log     TensorRT's builder log (engine.build)
  layers.json   the engine inspector's per-layer JSON (when the inspector is available)
  eval.txt      the contest-style table (evaluate.format_table)
On failure: exit status 1 and `error: <stage>: <message>` as the last line of stderr.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

RESULT_VERSION = 1


class StageError(Exception):
    def __init__(self, stage: str, exc: BaseException) -> None:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        super().__init__(f"{stage}: {type(exc).__name__}: {first}" if first else f"{stage}: {type(exc).__name__}")
        self.stage = stage


def _jsonable(obj: Any) -> Any:
    """Plain JSON data from dataclasses, paths, numpy scalars, tuples."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "item"):          # numpy scalar
        return obj.item()
    return str(obj)


def _watch_parent() -> None:
    """Exit when the tuner that started us dies (e.g. killed with SIGKILL): no orphan builds."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(2)
            if os.getppid() != parent:
                os._exit(3)
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


# --- the stages; each wraps one call into another package ------------------------------
def prepare(onnx: Path, config, cache_dir: Path) -> tuple[Path, dict[str, Any]]:
    """engine.prepare.prepare_onnx -> (the ONNX to build, rewrite sites per pass)."""
    from engine.prepare import prepare_onnx

    prepared = prepare_onnx(onnx, config, cache_dir)
    if isinstance(prepared, (str, os.PathLike)):
        return Path(prepared), {}
    path = next((getattr(prepared, a) for a in ("path", "onnx_path", "onnx") if hasattr(prepared, a)), None)
    if path is None:
        raise TypeError(f"prepare_onnx returned {type(prepared).__name__} without a path")
    sites = getattr(prepared, "sites", None) or {}
    return Path(path), _jsonable(sites)


def build(onnx: Path, config, plan: Path, timing_cache: Path, calibration: Path | None,
          plugin_libs: list[Path], log_path: Path) -> Any:
    from engine.build import build_engine

    return build_engine(onnx, config, plan, timing_cache=timing_cache, calibration=calibration,
                        plugin_libs=plugin_libs, log_path=log_path)


def inspect(plan: Path, model: str, plugin_libs: list[Path], layers_path: Path) -> tuple[dict, str | None]:
    """Per-layer JSON to layers.json and the precision counts; a missing inspector is a warning.

    The inspector only informs (dashboard, reports); it never changes the score.
    """
    try:
        import engine.inspect as ins
        layers = ins.inspect_plan(plan, plugin_libs=plugin_libs)
        counts = ins.precision_counts(layers, model)
    except (ImportError, AttributeError) as exc:
        return {}, f"inspector unavailable: {type(exc).__name__}: {exc}"
    except Exception as exc:
        return {}, f"inspector failed: {type(exc).__name__}: {exc}"
    layers_path.write_text(json.dumps(_jsonable(layers), indent=1))
    return _jsonable(counts), None


def evaluate(model: str, plan: Path, data: Path, grid, harness: str, runs: int | None, warmup: int | None,
             plugin_libs: list[Path]) -> list:
    from evaluate import evaluate_plan

    return evaluate_plan(model, plan, data, grid=grid, harness=harness, runs=runs, warmup=warmup,
                         plugin_libs=tuple(plugin_libs))


def run(req) -> dict[str, Any]:
    from engine.config import BuildConfig
    from evaluate import case_row, format_table
    from scoring.objective import constraint, objective

    from search.grid import parse_grid
    from search.options import to_dict

    opts = req.trial
    out = Path(req.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        config = BuildConfig.load(req.config)
        grid = parse_grid(opts.grid)
    except Exception as exc:
        raise StageError("config", exc) from exc
    plugin_libs = [Path(p) for p in opts.plugin_libs]
    result: dict[str, Any] = {"version": RESULT_VERSION, "model": config.model, "harness": opts.harness,
                              "config": config.to_dict(), "trial_options": to_dict(opts), "warnings": []}

    t0 = time.monotonic()
    try:
        onnx, sites = prepare(Path(req.onnx), config, Path(req.cache_dir))
    except Exception as exc:
        raise StageError("prepare", exc) from exc
    result["prepare_s"] = time.monotonic() - t0
    result["sites"] = sites

    plan = out / f"{config.model}.plan"
    calibration = Path(req.data) / f"calibration-{config.model}.npz" if config.uses_int8 else None
    t0 = time.monotonic()
    try:
        report = build(onnx, config, plan, Path(req.timing_cache), calibration, plugin_libs, out / "build.log")
    except Exception as exc:
        raise StageError("build", exc) from exc
    result["build_s"] = time.monotonic() - t0
    result["build_report"] = _jsonable(report)
    result["plan_bytes"] = plan.stat().st_size if plan.exists() else None

    counts, warning = inspect(plan, config.model, plugin_libs, out / "layers.json")
    result["precision_counts"] = counts
    if warning:
        result["warnings"].append(warning)

    t0 = time.monotonic()
    try:
        cases = evaluate(config.model, plan, Path(req.data), grid, opts.harness, opts.runs, opts.warmup,
                         plugin_libs)
        rows = [_jsonable(case_row(c)) for c in cases]
        result["objective"] = objective(cases)
        result["constraint"] = constraint(cases)
    except Exception as exc:
        raise StageError("evaluate", exc) from exc
    result["eval_s"] = time.monotonic() - t0
    result["cases"] = rows
    result["feasible"] = result["constraint"] <= 0 and math.isfinite(result["objective"])
    (out / "eval.txt").write_text(format_table(rows) + "\n")

    if not opts.keep_plans and plan.exists():
        plan.unlink()     # hundreds of trials x hundreds of MB; freeze rebuilds from the config
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m search.worker", description=__doc__.split("\n\n")[0])
    p.add_argument("--request", required=True, help="the trial's request.json (written by the runner)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _watch_parent()
    from search.request import read_request
    try:
        try:
            req = read_request(args.request)
        except Exception as exc:
            raise StageError("request", exc) from exc
        result = run(req)
    except StageError as exc:
        traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:   # a bug here, not in a stage: still one last line for the runner
        traceback.print_exc()
        print(f"error: worker: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    path = Path(req.out) / "result.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(result), indent=1))
    tmp.replace(path)       # the runner never reads a half-written result
    print(f"objective {result['objective']:.3f} ms, constraint {result['constraint']:.3g}, "
          f"build {result['build_s']:.1f} s, eval {result['eval_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
