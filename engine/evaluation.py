"""Run one engine over a workload's test cases and score them: the runner of the tuner (MetaSchedule's
"runner"), below evaluate.py's CLI, search's worker and bench's scripts, which all call it.

    cases = evaluate_plan("encoder", "encoder.plan", "work/data", harness="contest")
"""
from __future__ import annotations

import dataclasses
import gc
import math
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from scoring.metrics import compare_case, rules
from scoring.objective import CaseResult, constraint, contest_score, objective
from workload import registry
from workload.errors import OneLineError, first_line


class EvaluateError(OneLineError):
    """Missing plan, data folder, test file or npz key; outputs that do not fit: one line."""


# --- test cases ---------------------------------------------------------------------------------
def case_keys(model: str) -> list[str]:
    """The arrays of a test file: the model's inputs, then the reference outputs (the contest's names)."""
    return [*registry.get(model).input_names, *(r.name for r in rules(model))]


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


def _lacking(path: Path, keys: Sequence[str], wanted: Sequence[str]) -> None:
    missing = [k for k in wanted if k not in keys]
    if missing:
        raise EvaluateError(f"{path.name} lacks key(s) {missing}; it has {sorted(keys)}")


def check_cases(model: str, cases: Sequence[tuple[int, int, Path]]) -> None:
    """Every test file readable with the model's inputs and references (read from the files' directories only)."""
    from workload.data import npz_keys

    for _, _, path in cases:
        _lacking(path, npz_keys(path), case_keys(model))


def load_case(path: Path, model: str, input_names: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(feeds by the engine's input names, reference outputs by the contest's names)."""
    from workload.data import open_npz

    try:
        with open_npz(path) as z:
            _lacking(path, z.files, list(input_names) + [r.name for r in rules(model)])
            feeds = {n: z[n] for n in input_names}
            reference = {r.name: z[r.name] for r in rules(model)}
    except (OSError, ValueError, EOFError) as exc:       # an array that does not read back
        raise EvaluateError(f"cannot read {path}: {first_line(exc)}") from None
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


def convention_rows(model: str, label: str, case_rows: Iterable[dict[str, Any]], *, layout: str | None = None,
                    precision: str | None = None, build_s: float | None = None) -> list[dict[str, Any]]:
    """case_row dicts of one engine as rows of ../shared/conventions/results.md (None: not known here)."""
    return [{"model": model, "label": label, "harness": c.get("harness"), "layout": layout, "precision": precision,
             "cuda_graph": c.get("cuda_graph"), "bs": c["batch"], "sl": c["length"], "latency_ms": c["latency_ms"],
             "good": bool(c["good"]), **{k: c.get(k) for k in ("a0", "r0", "a1", "r1")}, "build_s": build_s,
             "profile": c.get("profile"), "host_ms": c.get("host_ms")} for c in case_rows]


def plan_build_facts(plan: str | Path) -> dict[str, Any]:
    """layout, precision and build_s of a plan from the report `engine build --report` wrote beside it
    (PLAN.report.json; build.sh writes one); {} when there is none."""
    import json

    from engine.config import BuildConfig, ConfigError, precision_class

    try:
        report = json.loads(Path(plan).with_suffix(".report.json").read_text())
        config = BuildConfig.from_dict(report["config"])
    except (OSError, ValueError, KeyError, TypeError, ConfigError):
        return {}
    return {"layout": config.layout, "precision": precision_class(config), "build_s": report.get("build_s")}


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
