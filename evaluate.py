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

Library API (engine/evaluation.py; the search's trial worker and bench's scripts call it):
    evaluate_plan(model, plan, data_dir, grid=None, harness="serving", runs=None, warmup=None,
                  plugin_libs=()) -> list[scoring.objective.CaseResult]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from scoring.objective import objective
from workload import registry
from workload.errors import OneLineError, OneLineParser, WorkloadError, report
from engine.evaluation import (EvaluateError, check_cases, convention_rows, evaluate_plan, format_table,
                               model_summary, plan_build_facts, rows_json, select_cases)

DEFAULT_DATA = "work/data"          # the WeNet specs' cases folder (another spec names its own)


def environment() -> dict[str, Any]:
    """GPU name and TensorRT version (best effort: evaluation never fails for want of them)."""
    env: dict[str, Any] = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    try:
        from engine.backend import get_backend
        backend = get_backend()
        env["tensorrt"] = backend.version()
        env["gpu"] = backend.gpu_name()
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
def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python evaluate.py", description=__doc__.split("\n\n")[0])
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
    from workload.data import parse_data_grid

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
        return parse_data_grid(text) if model in ("encoder", "decoder") else parse_cases(text)
    except WorkloadError as exc:
        raise EvaluateError(str(exc)) from None


def run(args: argparse.Namespace) -> dict[str, Any]:
    from engine.harness import get_harness
    from workload.outputs import check_output_file

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
    get_harness(harness).loops(args.warmup, args.runs)
    if args.json:
        check_output_file(args.json, "results file")
    for m in models:                       # fail fast, before any engine loads
        if not plans[m].is_file():
            raise EvaluateError(f"engine file {plans[m]} does not exist (build it with build.sh)")
        check_cases(m, select_cases(m, data[m], grids[m], strict=grids[m] is not None)[0])
    libs = plugin_libraries(args.plugins, None if args.no_cwd_plugins else Path.cwd())
    result: dict[str, Any] = {**environment(), "harness": harness, "cuda_graphs": not args.no_cuda_graphs
                              and harness == "serving", "runs": args.runs, "warmup": args.warmup,
                              "command": " ".join(shlex.quote(a) for a in sys.argv),
                              "plugin_libs": [str(p) for p in libs], "models": {}, "rows": []}
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
        result["rows"] += convention_rows(m, f"{m} {Path(plans[m]).name}", rows, **plan_build_facts(plans[m]))
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
    try:
        result = run(args)
    except OneLineError as exc:
        return report(exc)
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
