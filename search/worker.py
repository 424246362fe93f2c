"""One isolated trial: prepare the ONNX, build the engine, evaluate it, write result.json.

    python -m search.worker --config trial.yaml --onnx work/onnx/encoder.onnx --data work/data \
        --out work/trials/wenet-encoder/00012 --timing-cache work/timing-encoder.cache \
        --cache-dir work/prepared [--mode robust] [--runs N] [--warmup N] [--grid all|1x16,...] \
        [--plugin-lib lib.so ...] [--keep-plan]

Runs in its own process (search/runner.py) so that a TensorRT crash, hang or
out-of-memory kills one trial, not the study. Writes into --out:
  result.json   objective, constraint, per-case rows, build_s, eval_s, precision counts, sites per pass
  build.log     TensorRT's builder log (engine.build)
  layers.json   the engine inspector's per-layer JSON (when the inspector is available)
  eval.txt      the contest-style table
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


def evaluate(model: str, plan: Path, data: Path, grid, mode: str, runs: int | None, warmup: int | None,
             plugin_libs: list[Path]) -> list:
    from evaluate import evaluate_plan

    kwargs: dict[str, Any] = {"grid": grid, "mode": mode, "plugin_libs": tuple(plugin_libs)}
    if runs is not None:
        kwargs["runs"] = runs
    if warmup is not None:
        kwargs["warmup"] = warmup
    return evaluate_plan(model, plan, data, **kwargs)


# --- results --------------------------------------------------------------------------
def case_row(case) -> dict[str, Any]:
    e = case.errors
    return {"batch": case.batch, "length": case.length, "latency_ms": case.latency_ms,
            "throughput": case.batch * case.length / case.latency_ms * 1000 if case.latency_ms > 0 else None,
            "a0": e.a0, "r0": e.r0, "a1": e.a1, "r1": e.r1, "good": bool(e.good),
            "worst_ratio": e.worst_ratio, "penalty": case.penalty}


def eval_table(rows: list[dict[str, Any]]) -> str:
    """The contest's table: bs, sl, latency, throughput, a0, r0, a1, r1, Good/Bad."""
    head = f"{'bs':>4} {'sl':>5} {'latency(ms)':>12} {'throughput':>12} {'a0':>10} {'r0':>10} {'a1':>10} {'r1':>10}  check"
    lines = [head, "-" * len(head)]
    for r in rows:
        tp = f"{r['throughput']:12.1f}" if r["throughput"] is not None else f"{'-':>12}"
        lines.append(f"{r['batch']:>4} {r['length']:>5} {r['latency_ms']:12.3f} {tp} {r['a0']:10.3e} {r['r0']:10.3e} "
                     f"{r['a1']:10.3e} {r['r1']:10.3e}  {'Good' if r['good'] else 'Bad'}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict[str, Any]:
    from engine.config import BuildConfig
    from scoring.objective import constraint, objective

    from search.grid import parse_grid

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        config = BuildConfig.load(args.config)
        grid = parse_grid(args.grid)
    except Exception as exc:
        raise StageError("config", exc) from exc
    plugin_libs = [Path(p) for p in args.plugin_lib]
    result: dict[str, Any] = {"version": RESULT_VERSION, "model": config.model, "config": config.to_dict(),
                              "warnings": []}

    t0 = time.monotonic()
    try:
        onnx, sites = prepare(Path(args.onnx), config, Path(args.cache_dir))
    except Exception as exc:
        raise StageError("prepare", exc) from exc
    result["prepare_s"] = time.monotonic() - t0
    result["sites"] = sites

    plan = out / f"{config.model}.plan"
    calibration = Path(args.data) / f"calibration-{config.model}.npz" if config.uses_int8 else None
    t0 = time.monotonic()
    try:
        report = build(onnx, config, plan, Path(args.timing_cache), calibration, plugin_libs, out / "build.log")
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
        cases = evaluate(config.model, plan, Path(args.data), grid, args.mode, args.runs, args.warmup, plugin_libs)
        rows = [case_row(c) for c in cases]
        result["objective"] = objective(cases)
        result["constraint"] = constraint(cases)
    except Exception as exc:
        raise StageError("evaluate", exc) from exc
    result["eval_s"] = time.monotonic() - t0
    result["cases"] = rows
    result["feasible"] = result["constraint"] <= 0 and math.isfinite(result["objective"])
    (out / "eval.txt").write_text(eval_table(rows))

    if not args.keep_plan and plan.exists():
        plan.unlink()     # hundreds of trials x hundreds of MB; freeze rebuilds from the config
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m search.worker", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="the trial's BuildConfig YAML")
    p.add_argument("--onnx", required=True, help="the exported model (before passes)")
    p.add_argument("--data", required=True, help="test data directory (work/data)")
    p.add_argument("--out", required=True, help="trial directory for result.json and logs")
    p.add_argument("--timing-cache", required=True, help="TensorRT timing cache, read and updated")
    p.add_argument("--cache-dir", required=True, help="cache of prepared ONNX files, by pass set")
    p.add_argument("--mode", default="robust", help="evaluate.py timing mode (default: robust)")
    p.add_argument("--runs", type=int, default=None, help="timed runs per case (default: evaluate.py's)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up runs per case (default: evaluate.py's)")
    p.add_argument("--grid", default=None, help="test shapes: all (default) or e.g. 1x16,4x64")
    p.add_argument("--plugin-lib", action="append", default=[], help="plugin library to load (repeatable)")
    p.add_argument("--keep-plan", action="store_true", help="keep the engine file in the trial directory")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _watch_parent()
    try:
        result = run(args)
    except StageError as exc:
        traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:   # a bug here, not in a stage: still one last line for the runner
        traceback.print_exc()
        print(f"error: worker: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    path = Path(args.out) / "result.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(result), indent=1))
    tmp.replace(path)       # the runner never reads a half-written result
    print(f"objective {result['objective']:.3f} ms, constraint {result['constraint']:.3g}, "
          f"build {result['build_s']:.1f} s, eval {result['eval_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
