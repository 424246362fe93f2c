"""One isolated trial: prepare the ONNX, build the engine, evaluate it, write result.json.

    python -m search.worker --request work/trials/wenet-encoder-serving/00012/request.json

The request (search/request.py, written by the runner) names the config, ONNX, test
data, trial directory, timing cache, prepared-ONNX cache and workload spec, and carries the run's
TrialOptions (harness, grid, runs, warm-ups, plugin libraries, keep_plans).
Runs in its own process (search/runner.py) so that a TensorRT crash, hang or
out-of-memory kills one trial, not the study. Writes into the trial directory:
  result.json     objective, constraint, harness, per-case rows (evaluate.case_row: how each case
                  ran too; in grid order), build_s, eval_s, duration_s (this worker's wall time),
                  gpu_wait_s (waiting for the GPU it shares with other trials: search/gpu_share.py;
                  not in build_s or eval_s),
                  engine_cache (hit | miss | off) and engine_cache_key, precision counts, sites
                  per pass, the trial options
  progress.jsonl  one JSON line per measured case, as soon as it is measured (PROGRESS_FILE):
                  step, batch, length, latency_ms, penalty, good, worst_ratio, cumulative_ms;
                  the tuner reads it to prune a trial early (search/pruning.py)
  build.log       TensorRT's builder log (engine.build), or the engine cache hit that replaced it
  layers.json     the engine inspector's per-layer JSON (when the inspector is available)
  eval.txt        the contest-style table (evaluate.format_table)
  stage.txt       the stage being run (search/request.py's STAGE_FILE): named in the reason of a
                  worker killed by a signal, which prints no error line of its own
On failure: exit status 1 and `error: <stage>: <message>` as the last line of stderr.

Nothing is built twice: the build stage first looks the plan up in the engine cache
(engine/plan_cache.py) beside the prepared-ONNX cache (`<cache_dir>/../plans`, i.e.
WORK_DIR/plans, capped at TrialOptions.plan_cache_gib), and a plan it builds goes there before
it is evaluated (so a pruned trial's build is kept too). Cases are measured in `case_order`:
the largest shape first, so a slow or inaccurate engine shows at the first step.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Iterator

from search.gpu_share import WAIT_STAGE, gpu_turn

RESULT_VERSION = 1
PROGRESS_FILE = "progress.jsonl"
PLANS_DIR = "plans"              # the engine cache's directory, beside the prepared-ONNX cache
GIB = 1 << 30


def case_order(grid) -> list[tuple[int, int]]:
    """The order every trial measures its cases in: most work (batch x frames) first, ties by batch.

    Fixed by the grid alone, so step k is the same case in every trial (the pruner compares
    trials step by step), and the case that dominates the objective comes first.
    """
    return sorted(((int(b), int(t)) for b, t in grid), key=lambda bt: (-bt[0] * bt[1], -bt[0], -bt[1]))


def progress_record(step: int, case, cumulative_ms: float, elapsed_s: float) -> dict[str, Any]:
    """One line of progress.jsonl for a measured scoring.objective.CaseResult (non-finite -> null)."""
    worst = case.errors.worst_ratio
    penalty = case.penalty
    return {"step": step, "batch": case.batch, "length": case.length, "latency_ms": float(case.latency_ms),
            "penalty": penalty if math.isfinite(penalty) else None, "good": bool(case.errors.good),
            "worst_ratio": worst if math.isfinite(worst) else None,
            "cumulative_ms": cumulative_ms if math.isfinite(cumulative_ms) else None,
            "elapsed_s": round(elapsed_s, 3)}


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


def inspect(plan: Path, config, plugin_libs: list[Path], layers_path: Path) -> tuple[dict, dict, str | None]:
    """Per-layer JSON to layers.json, the precision counts and whether the pinned groups run as
    asked (engine.inspect.honoured); a missing inspector is a warning.

    The inspector only informs (dashboard, reports); it never changes the score.
    """
    try:
        import engine.inspect as ins
        layers = ins.inspect_plan(plan, plugin_libs=plugin_libs)
        counts = ins.precision_counts(layers, config.model)
        honoured = ins.honoured(config, layers)
    except (ImportError, AttributeError) as exc:
        return {}, {}, f"inspector unavailable: {type(exc).__name__}: {exc}"
    except Exception as exc:
        return {}, {}, f"inspector failed: {type(exc).__name__}: {exc}"
    layers_path.write_text(json.dumps(_jsonable(layers), indent=1))
    return _jsonable(counts), _jsonable(honoured), None


def evaluate(model: str, plan: Path, data: Path, grid, harness: str, runs: int | None, warmup: int | None,
             plugin_libs: list[Path], on_case=None) -> list:
    """evaluate.evaluate_plan over `grid` in its order; on_case(CaseResult) as each case is measured."""
    from engine.evaluation import evaluate_plan

    return evaluate_plan(model, plan, data, grid=grid, harness=harness, runs=runs, warmup=warmup,
                         plugin_libs=tuple(plugin_libs), on_case=on_case)


def open_engine_cache(req, config, onnx: Path, plugin_libs: list[Path], calibration: Path | None):
    """(PlanCache, PlanKey, None) for this build, or (None, None, why not) when the cache is not used.

    Never fails the trial: an unreadable GPU name, a missing TensorRT or a file that cannot be
    hashed turns the cache off for this trial, with a warning.
    """
    gib = req.trial.plan_cache_gib
    if not gib or gib <= 0:
        return None, None, None
    try:
        from engine.plan_cache import PlanCache, plan_key, tensorrt_and_gpu

        trt_version, gpu = tensorrt_and_gpu()
        key = plan_key(req.onnx, onnx, config, tensorrt_version=trt_version, gpu=gpu, plugin_libs=plugin_libs,
                       calibration=calibration)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return None, None, f"engine cache off for this trial: {type(exc).__name__}: {first}"
    return PlanCache(Path(req.cache_dir).parent / PLANS_DIR, int(gib * GIB)), key, None


@contextlib.contextmanager
def gpu_stage(req, out: Path, result: dict[str, Any], stage: str, exclusive: bool) -> Iterator[None]:
    """Run `stage` in this trial's turn on the GPU it may share (search/gpu_share.py): a build shared, a
    measurement exclusive; the wait is the stage WAIT_STAGE and adds to result["gpu_wait_s"]."""
    from search.request import write_stage

    with gpu_turn(req.gpu_lock, exclusive=exclusive, waiting=lambda: write_stage(out, WAIT_STAGE)) as waited:
        result["gpu_wait_s"] = result.get("gpu_wait_s", 0.0) + waited
        write_stage(out, stage)
        yield


def build_or_reuse(req, config, onnx: Path, plan: Path, calibration: Path | None, plugin_libs: list[Path],
                   out: Path, result: dict[str, Any]) -> Any:
    """The build stage: the engine cache's plan when the key matches, else a build (then stored)."""
    cache, key, warning = open_engine_cache(req, config, onnx, plugin_libs, calibration)
    if warning:
        result["warnings"].append(warning)
    result["engine_cache"] = "off" if key is None else "miss"
    result["engine_cache_key"] = key.key if key is not None else None
    if key is not None:
        try:
            hit = cache.fetch(key.key, plan)
        except OSError as exc:
            hit = None
            result["warnings"].append(f"engine cache lookup failed: {exc}")
        if hit is not None:
            from engine.plan_cache import cached_plan_summary

            result["engine_cache"] = "hit"
            result["cached_build"] = cached_plan_summary(hit)
            (out / "build.log").write_text(f"engine cache hit {key.key}: {hit.path}, built by "
                                           f"{hit.meta.get('built_by')} in {hit.meta.get('build_s')} s; "
                                           f"not built again\n")
            return hit.meta.get("build_report")
    # builds of the trials sharing this GPU overlap; none runs while one of them measures
    with gpu_stage(req, out, result, "build", exclusive=False):
        t0 = time.monotonic()
        try:
            report = build(onnx, config, plan, Path(req.timing_cache), calibration, plugin_libs, out / "build.log")
        except Exception as exc:
            raise StageError("build", exc) from exc
    if key is not None and plan.is_file():
        meta = {"material": key.material, "build_report": _jsonable(report), "built_by": str(out),
                "build_s": round(time.monotonic() - t0, 3)}
        try:
            note = cache.store(key.key, plan, meta)
        except OSError as exc:
            note = f"not stored: {exc}"
        if note:
            result["warnings"].append(f"engine cache: {note}")
    return report


def run(req) -> dict[str, Any]:
    from engine.config import BuildConfig
    from engine.evaluation import case_row, format_table
    from scoring.objective import constraint, objective
    from search.request import write_stage

    from workload import registry

    from search.grid import parse_grid
    from search.options import to_dict

    started = time.monotonic()
    opts = req.trial
    out = Path(req.out)
    out.mkdir(parents=True, exist_ok=True)
    write_stage(out, "config")
    try:
        config = BuildConfig.load(req.config)
        grid = parse_grid(opts.grid, config.model)
        registry.bind_onnx(config.model, req.onnx)      # layer groups by op type: of the source graph
    except Exception as exc:
        raise StageError("config", exc) from exc
    plugin_libs = [Path(p) for p in opts.plugin_libs]
    result: dict[str, Any] = {"version": RESULT_VERSION, "model": config.model, "harness": opts.harness,
                              "config": config.to_dict(), "trial_options": to_dict(opts), "warnings": []}

    t0 = time.monotonic()
    write_stage(out, "prepare")
    try:
        onnx, sites = prepare(Path(req.onnx), config, Path(req.cache_dir))
    except Exception as exc:
        raise StageError("prepare", exc) from exc
    result["prepare_s"] = time.monotonic() - t0
    result["sites"] = sites

    plan = out / f"{config.model}.plan"
    calibration = Path(req.data) / f"calibration-{config.model}.npz" if config.uses_int8 else None
    t0 = time.monotonic()
    write_stage(out, "build")
    report = build_or_reuse(req, config, onnx, plan, calibration, plugin_libs, out, result)
    result["build_s"] = time.monotonic() - t0 - result.get("gpu_wait_s", 0.0)
    result["build_report"] = _jsonable(report)
    result["plan_bytes"] = plan.stat().st_size if plan.exists() else None

    write_stage(out, "inspect")
    counts, honoured, warning = inspect(plan, config, plugin_libs, out / "layers.json")
    result["precision_counts"] = counts
    result["honoured"] = honoured
    if warning:
        result["warnings"].append(warning)

    order = case_order(grid)
    progress = out / PROGRESS_FILE
    progress.write_text("")
    measured: list = []

    def on_case(case) -> None:
        measured.append(case)
        total = sum(c.latency_ms * c.penalty for c in measured)
        line = json.dumps(progress_record(len(measured) - 1, case, total, time.monotonic() - t0))
        try:
            with progress.open("a") as f:  # one whole line per write: the tuner reads complete lines only
                f.write(line + "\n")
        except OSError:
            pass                           # progress only informs the pruner; the result still counts

    try:
        # the measurement has the GPU alone: no build of a trial sharing it runs meanwhile
        with gpu_stage(req, out, result, "evaluate", exclusive=True):
            t0 = time.monotonic()
            cases = evaluate(config.model, plan, Path(req.data), order, opts.harness, opts.runs, opts.warmup,
                             plugin_libs, on_case=on_case)
        position = {tuple(bt): i for i, bt in enumerate(grid)}
        cases = sorted(cases, key=lambda c: position.get((c.batch, c.length), len(position)))
        rows = [_jsonable(case_row(c)) for c in cases]
        result["objective"] = objective(cases)
        result["constraint"] = constraint(cases)
    except Exception as exc:
        raise StageError("evaluate", exc) from exc
    result["eval_s"] = time.monotonic() - t0
    result["case_order"] = [list(bt) for bt in order]
    result["cases"] = rows
    result["feasible"] = result["constraint"] <= 0 and math.isfinite(result["objective"])
    (out / "eval.txt").write_text(format_table(rows) + "\n")

    if not opts.keep_plans and plan.exists():
        plan.unlink()     # hundreds of trials x hundreds of MB; the engine cache keeps its own link
    result["duration_s"] = time.monotonic() - started
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
          f"build {result['build_s']:.1f} s (engine cache {result['engine_cache']}), eval {result['eval_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
