"""Score engines like the contest: per test case latency, throughput, errors, Good/Bad; the objective.

    python evaluate.py [--models encoder,decoder | --workload my-model.yaml [--plan my-model.plan]]
                       [--encoder encoder.plan] [--decoder decoder.plan]
                       [--data work/data] [--harness contest|serving] [--no-cuda-graphs] [--runs N]
                       [--warmup N] [--plugins DIR_or_.so ...] [--json out.json] [--grid all|stress|1x16,...]

Like the contest's harness it loads every plugin library (*.so) in the working
directory first (plus --plugins), and prints the table bs, sl, latency, throughput
(bs*sl/latency*1000), a0, r0, a1, r1, Good/Bad per model. Test cases are
{model}-{bs}-{sl}.npz in the workload's cases folder (work/data for WeNet); without --grid
every case of the judged grid (WeNet: batch <= 16) that exists is run.

Harnesses (engine/harness.py): `contest` is the organisers' final loop (profile 0,
one context, synchronous runs, 10 warm-ups + 30 timed, time_ns mean); `serving`
(default) picks the profile per shape, pads to buckets and replays CUDA graphs,
timed with CUDA events (median).

Library API (the search's trial worker):
    evaluate_plan(model, plan, data_dir, grid=None, harness="serving", runs=None, warmup=None,
                  plugin_libs=()) -> list[scoring.objective.CaseResult]
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import gc
import json
import math
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from scoring.metrics import compare_case, rules
from scoring.objective import CaseResult, constraint, contest_score, objective
from workload import registry
from workload.errors import WorkloadError

DEFAULT_DATA = "work/data"          # the WeNet specs' cases folder (another spec names its own)


class EvaluateError(Exception):
    """Missing plan, data folder, test file or npz key; outputs that do not fit: one line."""


# --- test cases ---------------------------------------------------------------------------------
def case_path(data_dir: str | Path, model: str, batch: int, length: int) -> Path:
    return Path(data_dir) / f"{model}-{batch}-{length}.npz"


def select_cases(model: str, data_dir: str | Path, grid: Sequence[tuple[int, int]] | None = None,
                 strict: bool = True) -> tuple[list[tuple[int, int, Path]], list[tuple[int, int]]]:
    """(cases to run, shapes without a file). strict: every shape of the grid (default: the workload's
    judged grid) must have a file."""
    if not registry.known(model):
        raise EvaluateError(f"unknown model {model!r}; expected one of {', '.join(registry.names())} "
                            "(or --workload SPEC)")
    spec = registry.get(model)
    data = Path(data_dir)
    if not data.is_dir():
        hint = "write it with `python -m workload data`" if model in ("encoder", "decoder") else spec.cases_hint()
        raise EvaluateError(f"data folder {data} does not exist ({hint})")
    shapes = tuple(grid) if grid is not None else spec.grid.judged
    found, missing = [], []
    for b, t in shapes:
        p = case_path(data, model, b, t)
        (found.append((b, t, p)) if p.is_file() else missing.append((b, t)))
    if strict and missing:
        names = ", ".join(case_path(data, model, b, t).name for b, t in missing[:4])
        raise EvaluateError(f"{len(missing)} test file(s) missing in {data}: {names}"
                            f"{' ...' if len(missing) > 4 else ''}")
    if not found:
        raise EvaluateError(f"no {model} test file of the grid in {data} (expected e.g. {model}-4-64.npz)")
    return found, missing


def load_case(path: Path, model: str, input_names: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(feeds by the engine's input names, reference outputs by the contest's names)."""
    try:
        with np.load(str(path)) as z:
            keys = set(z.files)
            wanted = list(input_names) + [r.name for r in rules(model)]
            missing = [k for k in wanted if k not in keys]
            if missing:
                raise EvaluateError(f"{path.name} lacks key(s) {missing}; it has {sorted(keys)}")
            feeds = {n: z[n] for n in input_names}
            reference = {r.name: z[r.name] for r in rules(model)}
    except EvaluateError:
        raise
    except (OSError, ValueError) as exc:
        raise EvaluateError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") \
            from None
    return feeds, reference


def _progress(items: list, enabled: bool, desc: str):
    if enabled:
        try:
            from tqdm import tqdm
            return tqdm(items, desc=desc, unit="case", file=sys.stderr)
        except ImportError:
            pass
    return items


def evaluate_plan(model: str, plan_path: str | Path, data_dir: str | Path, *,
                  grid: Sequence[tuple[int, int]] | None = None, harness: str = "serving",
                  cuda_graphs: bool | None = None, runs: int | None = None, warmup: int | None = None,
                  plugin_libs: Sequence[str | Path] = (), strict: bool = True,
                  progress: bool = False,
                  on_case: Callable[[CaseResult], None] | None = None) -> list[CaseResult]:
    """Every test case of `grid` (default: the workload's judged grid) on one engine, run and timed by `harness`.

    cuda_graphs: override the harness's choice (serving without graphs, for comparisons).
    runs/warmup None: the harness's (10 warm-ups, 30 runs; the contest harness: the spec's contest_loop).
    strict: every shape of the grid needs its test file (else only those found run).
    on_case: called with each result as soon as it is measured (partial results).
    Each CaseResult.run says how the case ran (profile, padded shapes, CUDA graph or not, host time).
    """
    from engine.harness import get_harness
    from engine.runtime import TrtRunner
    from workload.padding import PAD_SPECS

    plan = Path(plan_path)
    if not plan.is_file():
        raise EvaluateError(f"engine file {plan} does not exist (build it with build.sh or `python -m engine build`)")
    chosen = get_harness(harness).with_options(cuda_graphs=cuda_graphs)
    if chosen.name == "contest" and registry.known(model):      # the workload's own loop of its contest
        warm, timed = registry.get(model).contest_loop
        chosen = dataclasses.replace(chosen, warmup=warm, runs=timed)
    chosen.loops(warmup, runs)                              # bad counts fail before loading anything
    cases, _ = select_cases(model, data_dir, grid, strict)
    results: list[CaseResult] = []
    with TrtRunner(plan, plugin_libs, harness=chosen, pad=PAD_SPECS.get(model)) as runner:
        expected = {r.name for r in rules(model)}
        lacking = sorted(expected - set(runner.output_names))
        if lacking:
            raise EvaluateError(f"{plan.name} has no output(s) {lacking}; its outputs are {runner.output_names}")
        for b, t, path in _progress(cases, progress, model):
            feeds, reference = load_case(path, model, runner.input_names)
            outputs = runner.infer(feeds)
            try:
                errors = compare_case(model, outputs, reference)
            except ValueError as exc:
                raise EvaluateError(f"{path.name}: {exc}") from None
            del outputs, reference        # decoder_out at bs 64 is 682 MB, twice
            gc.collect()
            m = runner.measure(feeds, warmup=warmup, runs=runs)
            del feeds
            results.append(CaseResult(b, t, m.latency_ms, errors,
                                      run={"harness": chosen.label, "profile": m.profile, "cuda_graph": m.cuda_graph,
                                           "graph_note": m.graph_note, "host_ms": m.host_ms, "shapes": m.shapes}))
            if on_case is not None:
                on_case(results[-1])
    return results


# --- results -----------------------------------------------------------------------------------
def case_row(case: CaseResult) -> dict[str, Any]:
    e = case.errors
    return {"batch": case.batch, "length": case.length, "latency_ms": case.latency_ms,
            "throughput": case.batch * case.length / case.latency_ms * 1000 if case.latency_ms > 0 else None,
            "a0": e.a0, "r0": e.r0, "a1": e.a1, "r1": e.r1, "good": bool(e.good),
            "worst_ratio": e.worst_ratio if math.isfinite(e.worst_ratio) else None, "penalty": case.penalty
            if math.isfinite(case.penalty) else None, **case.run}


def rows_json(cases: Iterable[CaseResult]) -> list[dict[str, Any]]:
    return [case_row(c) for c in cases]


def model_summary(cases: Sequence[CaseResult]) -> dict[str, Any]:
    obj = objective(cases)
    return {"objective": obj if math.isfinite(obj) else None, "constraint": constraint(cases),
            "contest_score": contest_score(cases), "good_cases": sum(bool(c.errors.good) for c in cases),
            "total_cases": len(cases)}


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The contest's table: bs, sl, latency, throughput, a0, r0, a1, r1, Good/Bad."""
    head = (f"{'bs':>4} {'sl':>5} {'latency(ms)':>12} {'throughput':>12} {'a0':>10} {'r0':>10} "
            f"{'a1':>10} {'r1':>10}  check")
    lines = [head, "-" * len(head)]
    for r in rows:
        tp = f"{r['throughput']:12.1f}" if r.get("throughput") is not None else f"{'-':>12}"
        lines.append(f"{r['batch']:>4} {r['length']:>5} {r['latency_ms']:12.3f} {tp} {r['a0']:10.3e} "
                     f"{r['r0']:10.3e} {r['a1']:10.3e} {r['r1']:10.3e}  {'Good' if r['good'] else 'Bad'}")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    """GPU name and TensorRT version (best effort: evaluation never fails for want of them)."""
    env: dict[str, Any] = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    try:
        from engine.trt_compat import import_tensorrt
        from engine.cuda_runtime import gpu_name
        env["tensorrt"] = str(import_tensorrt().__version__)
        env["gpu"] = gpu_name()
    except Exception as exc:
        env.setdefault("tensorrt", None)
        env["gpu"] = f"unknown ({type(exc).__name__})"
    return env


def plugin_libraries(args_plugins: Sequence[str], cwd: Path | None) -> list[Path]:
    """Every *.so in `cwd` (the contest's rule; None to skip) plus the given files and folders' *.so."""
    from plugins.library import discover_plugin_libraries

    libs: list[Path] = []
    if cwd is not None:
        libs += discover_plugin_libraries(cwd)
    for item in args_plugins:
        p = Path(item)
        if p.is_dir():
            libs += discover_plugin_libraries(p)
        elif p.is_file():
            libs.append(p)
        else:
            raise EvaluateError(f"plugin library or folder {p} does not exist")
    seen, out = set(), []
    for lib in libs:
        key = lib.resolve()
        if key not in seen:
            seen.add(key)
            out.append(lib)
    return out


# --- CLI --------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python evaluate.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="encoder,decoder", help="comma list (default encoder,decoder)")
    p.add_argument("--encoder", default="encoder.plan", help="encoder engine (default encoder.plan)")
    p.add_argument("--decoder", default="decoder.plan", help="decoder engine (default decoder.plan)")
    p.add_argument("--workload", help="workload spec YAML of a model of your own: evaluate its engine "
                                      "(instead of --models)")
    p.add_argument("--plan", help="the --workload's engine (default <name>.plan)")
    p.add_argument("--data", default=None, help=f"test data folder (default: the workload's cases folder, "
                                                f"{DEFAULT_DATA} for WeNet)")
    p.add_argument("--harness", default="serving", choices=("contest", "serving"),
                   help="contest: the organisers' loop on profile 0; serving (default): profile per shape, "
                        "CUDA graphs, CUDA-event median")
    p.add_argument("--contest", action="store_true", help="same as --harness contest")
    p.add_argument("--no-cuda-graphs", action="store_true", help="serving without CUDA-graph replay")
    p.add_argument("--runs", type=int, help="timed runs per case (default 30)")
    p.add_argument("--warmup", type=int, help="warm-up runs per case (default 10)")
    p.add_argument("--plugins", nargs="*", default=[], help="plugin libraries or folders of *.so to load too")
    p.add_argument("--no-cwd-plugins", action="store_true", help="do not load the working directory's *.so")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--grid", help="all (the judged grid, batch <= 16; default: every such case found), stress "
                                  "(batch 64), full (both) or a BATCHxFRAMES comma list, e.g. 1x16,16x1024")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _parse_models(text: str) -> list[str]:
    models = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in models if not registry.known(m)]
    if bad or not models:
        raise EvaluateError(f"--models {text!r}: expected a comma list of {', '.join(registry.names())}")
    return models


def _grid(text: str | None, model: str) -> tuple[tuple[int, int], ...] | None:
    """--grid for one model: all / stress / full of its spec, or a BATCHxLENGTH list; None: every judged case found."""
    from workload.cases import parse_cases
    from workload.data import parse_grid

    spec = registry.get(model)
    named = {"all": spec.grid.judged, "stress": spec.grid.stress, "full": spec.grid.full}
    key = (text or "").strip().lower()
    if not key:
        return None
    if key in named:
        if not named[key]:
            raise EvaluateError(f"--grid {key}: workload {model} has no {key} shapes")
        return named[key]
    try:       # WeNet: frames >= 7 (one frame after the subsampling)
        return parse_grid(text) if model in ("encoder", "decoder") else parse_cases(text)
    except WorkloadError as exc:
        raise EvaluateError(str(exc)) from None


def run(args: argparse.Namespace) -> dict[str, Any]:
    plans = {"encoder": Path(args.encoder), "decoder": Path(args.decoder)}
    if args.workload:
        try:
            spec = registry.resolve(args.workload)
        except WorkloadError as exc:
            raise EvaluateError(str(exc)) from None
        models = [spec.name]
        plans[spec.name] = Path(args.plan or f"{spec.name}.plan")
    elif args.plan:
        raise EvaluateError("--plan is the engine of a --workload (WeNet: --encoder / --decoder)")
    else:
        models = _parse_models(args.models)
    harness = "contest" if args.contest else args.harness
    if args.no_cuda_graphs and harness == "contest":
        raise EvaluateError("--no-cuda-graphs is for --harness serving (the contest harness uses none)")
    grids = {m: _grid(args.grid, m) for m in models}
    data = {m: Path(args.data) if args.data else registry.get(m).cases_dir() for m in models}
    for m in models:                       # fail fast, before any engine loads
        if not plans[m].is_file():
            raise EvaluateError(f"engine file {plans[m]} does not exist (build it with build.sh)")
        select_cases(m, data[m], grids[m], strict=grids[m] is not None)
    libs = plugin_libraries(args.plugins, None if args.no_cwd_plugins else Path.cwd())
    result: dict[str, Any] = {**environment(), "harness": harness, "cuda_graphs": not args.no_cuda_graphs
                              and harness == "serving", "runs": args.runs, "warmup": args.warmup,
                              "command": " ".join(shlex.quote(a) for a in sys.argv),
                              "plugin_libs": [str(p) for p in libs], "models": {}}
    total = 0.0
    for m in models:
        grid = grids[m]
        _, missing = select_cases(m, data[m], grid, strict=grid is not None)
        if missing:
            print(f"note: {m}: no test file for {', '.join(f'{b}x{t}' for b, t in missing)}; skipped",
                  file=sys.stderr)
        cases = evaluate_plan(m, plans[m], data[m], grid=grid, harness=harness,
                              cuda_graphs=False if args.no_cuda_graphs else None, runs=args.runs,
                              warmup=args.warmup, plugin_libs=libs, strict=False, progress=not args.no_progress)
        rows = rows_json(cases)
        summary = model_summary(cases)
        result["models"][m] = {"plan": str(plans[m]), "cases": rows, **summary}
        total += objective(cases)
        print(f"\n{m} ({plans[m]}, {harness} harness)")
        print(format_table(rows))
        obj = summary["objective"]
        print(f"{m}: objective {obj:.3f} ms" if obj is not None else f"{m}: objective inf",
              f"({summary['good_cases']}/{summary['total_cases']} Good, constraint {summary['constraint']:.3g})")
    result["objective"] = total if math.isfinite(total) else None
    if len(models) > 1:
        print(f"\ntotal objective {total:.3f} ms (sum of latency x penalty over every case, lower is better)")
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handled: tuple[type[BaseException], ...] = (EvaluateError, WorkloadError)
    try:
        from engine.errors import EngineError
        from plugins.library import PluginLibraryError
        handled += (EngineError, PluginLibraryError)
    except ImportError:
        pass
    try:
        result = run(args)
    except handled as exc:
        text = str(exc).strip()
        print(f"error: {text.splitlines()[0] if text else type(exc).__name__}", file=sys.stderr)
        return 2
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
