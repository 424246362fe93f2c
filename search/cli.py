"""python -m search VERB: tune, status, best, freeze, dashboard, export, plan, sensitivity, precision, pareto, plot.

A session (GPU host; everything but `tune` also works on a CPU machine):
    python -m search tune --model both --harness serving --trials 100 --gpus 0,1 --max-opt-level 4
    python -m search status                        # every study: wenet-<model>-<harness>
    python -m search best --model encoder --harness contest
    python -m search freeze --harness serving      # configs/<model>.yaml + .timing.cache for build.sh
    python -m search export --out bench/results/study-h100.json
    python -m search dashboard                     # http://127.0.0.1:8080, with trial artifacts

Bad input prints one `error: ...` line and exits 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import shlex
import sys
from pathlib import Path
from typing import Sequence

import optuna

from engine.config import LAYOUTS
from workload import registry
from workload.errors import OneLineError, report
from workload.outputs import check_output_dir, check_output_file

from search.errors import SearchError
from search.plans import PLANS
from search.options import (HARNESS_NAMES, SpaceOptions, StudyOptions, TuneOptions, add_arguments,
                            from_args)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the usage text is one --help away)."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {self.prog}: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def _study_args(p: argparse.ArgumentParser, harness_default: str = "all") -> None:
    """Which studies a verb works on: StudyOptions' flags and --harness."""
    add_arguments(p, StudyOptions)
    every = harness_default == "all"
    p.add_argument("--harness", default=harness_default, choices=HARNESS_NAMES + (("all",) if every else ()),
                   help=f"the harness whose study to use: {', '.join(HARNESS_NAMES)}"
                        + (" or all (default: every study present)" if every else f" (default: {harness_default})"))


def _space_args(p: argparse.ArgumentParser) -> None:
    """What `plan` and `sensitivity` need to build the space `tune` samples."""
    add_arguments(p, SpaceOptions)
    add_arguments(p, TuneOptions, only=("onnx_dir",))


def _base_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default=None, help="the config precision plans start from: a seed of the harness "
                                                "(e.g. per_batch), trial:N or a YAML file; labels end in @NAME")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m search", description="Optuna autotuner for TensorRT engines (--workload: any ONNX).",
                epilog=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    t = sub.add_parser("tune", help="run trials (build + evaluate engines) and store them in the study",
                       description="Run trials: sample a BuildConfig, build and evaluate it in an isolated "
                                   "worker process, store the result in the study <study>-<harness> (WeNet: "
                                   "wenet-<model>-<harness>). Re-running continues the study.")
    add_arguments(t, TuneOptions)

    s = sub.add_parser("status", help="trials by state, feasible count and best value of each study",
                       description="Per study: harness, trials by state, feasible/infeasible counts, "
                                   "best feasible value.")
    _study_args(s)

    b = sub.add_parser("best", help="the best feasible trial: its config and per-shape table",
                       description="Print the best FEASIBLE trial (every test case Good) of each study.")
    _study_args(b)

    f = sub.add_parser("freeze", help="write configs/<model>.yaml (+ timing cache) of the best feasible trial",
                       description="Write the best feasible trial of the harness's study as OUT/<model>.yaml "
                                   "with a provenance header, and copy its timing cache to "
                                   "OUT/<model>.timing.cache. build.sh builds from these.")
    _study_args(f, harness_default="serving")
    f.add_argument("--out", default="configs", help="output directory (default: configs)")

    d = sub.add_parser("dashboard", help="serve optuna-dashboard on the study database and trial artifacts",
                       description="optuna-dashboard over the studies, with each trial's artifacts "
                                   "(config, request, result.json, eval table, layers, build log).")
    add_arguments(d, StudyOptions, only=("work_dir", "storage"))
    d.add_argument("--artifacts", default=None, help="artifact directory (default: WORK_DIR/artifacts)")
    d.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, local only)")
    d.add_argument("--port", type=int, default=8080, help="port (default: 8080)")

    e = sub.add_parser("export", help="the trial table as JSON (for bench/results/study-<gpu>.json)",
                       description="Every trial of each study as JSON: number, state, value, constraint, "
                                   "params, user attrs. Non-finite numbers are written as \"inf\"/\"nan\".")
    _study_args(e)
    e.add_argument("--out", required=True, help="JSON file to write")

    pn = sub.add_parser("plan", help="enqueue a planned set of trials: ablation, sensitivity, bisect, rules",
                        description="Enqueue fixed configs into the study, labelled in user attr 'plan'; "
                                    "`tune --trials N` runs them first (with the same space flags). ablation: no "
                                    "rewrite / each pass / each plugin / every pass, in FP32 and FP16. sensitivity: "
                                    "all FP16, then each layer group alone pinned FP32. bisect / bisect_reverse: "
                                    "the first / last N groups in graph order FP32, N = 1, 2, 4 ... all. rules: "
                                    "FP32 for norms, softmax, scoring, attention (cumulative), obey and prefer "
                                    "(+ INT8 feed-forward/conv with --allow-int8).")
    _study_args(pn, harness_default="serving")
    pn.add_argument("--plan", required=True, choices=PLANS, help="ablation, sensitivity, bisect, bisect_reverse or rules")
    _base_arg(pn)
    _space_args(pn)

    se = sub.add_parser("sensitivity", help="per layer group: error removed and latency added by FP32",
                        description="Read a finished sensitivity plan: each group's effect on the worst "
                                    "metric/threshold ratio and on latency, and the cheapest FP32 set predicted "
                                    "to be Good everywhere (--enqueue adds it to the study as a trial).")
    _study_args(se)
    _space_args(se)
    se.add_argument("--enqueue", action="store_true", help="enqueue the predicted config (plan label sensitivity/predicted)")
    se.add_argument("--margin", type=float, default=0.9, help="predicted worst ratio to reach (default 0.9)")
    se.add_argument("--json", default=None, help="also write the table as JSON")
    _base_arg(se)

    pr = sub.add_parser("precision", help="bisect and rules results, and the best engine per precision",
                        description="Per study: the bisection ladders (smallest Good N; --enqueue adds the next "
                                    "midpoint), the rules seeds, and the best FP32 / all-FP16 / mixed / INT8-mixed "
                                    "trial on one layout (--json: rows in the bench/results format).")
    _study_args(pr)
    _space_args(pr)
    _base_arg(pr)
    pr.add_argument("--enqueue", action="store_true", help="enqueue the next bisection step of each ladder")
    pr.add_argument("--layout", default=None, choices=LAYOUTS, help="layout of the four rows (default: the best lower-precision "
                                                   "trial's), e.g. per_batch")
    pr.add_argument("--json", default=None, help="write the four engines' per-shape rows (bench/results format)")
    pr.add_argument("--gpu", default="unknown", help="GPU name for the JSON header")

    pa = sub.add_parser("pareto", help="the latency / worst-ratio Pareto front of each study (PNG with matplotlib)",
                        description="Non-dominated COMPLETE trials: summed latency against worst metric/threshold "
                                    "ratio. --out plots every trial grey and the front highlighted.")
    _study_args(pa)
    pa.add_argument("--out", default=None, help="PNG to write (needs matplotlib; without it only the table)")
    pa.add_argument("--json", default=None, help="also write the fronts as JSON")

    pl = sub.add_parser("plot", help="best feasible objective vs trial number (PNG; needs matplotlib)",
                        description="Plot the best feasible objective so far against the trial number.")
    _study_args(pl)
    pl.add_argument("--out", default="best.png", help="PNG file to write (default: best.png)")
    return p


# --- studies to read ---------------------------------------------------------------------
def _existing_studies(args) -> list[optuna.Study]:
    """The studies a read-only verb works on; a StorageError when none exists."""
    from search.storage import existing_studies

    sel = from_args(StudyOptions, args)
    return existing_studies(sel.storage, sel.models, args.harness, sel.study_name)


def _outputs(*paths: str | None) -> None:
    """Files a verb will write, checked before it reads anything."""
    for path in paths:
        if path:
            check_output_file(path, "output file")


# --- verbs ---------------------------------------------------------------------------------
def cmd_tune(args) -> int:
    from search.tuning import tune

    opts = from_args(TuneOptions, args)
    code = 0
    for s in tune(opts):
        best = (f"best feasible so far {s['best_value']:.3f} ms (trial {s['best_trial']})"
                if s["best_trial"] is not None else "no feasible trial yet")
        print(f"{s['study']} ({s['harness']} harness): {s['new_trials']} new trials ({s['complete']} complete, "
              f"{s['fail']} failed, {s['pruned']} pruned); {best}")
        if s["fail"] and s["fail"] == s["new_trials"]:
            # a broken setup (no TensorRT, missing data...) must not look like a finished search
            print(f"error: every new {s['study']} trial failed; last: {s['last_fail_reason']}", file=sys.stderr)
            code = 1
    return code


def cmd_status(args) -> int:
    from search.results import format_summary, summary

    for study in _existing_studies(args):
        print(format_summary(summary(study)))
    return 0


def cmd_best(args) -> int:
    from search.errors import NoFeasibleTrial
    from search.results import describe_best

    missing = []
    for study in _existing_studies(args):
        try:
            print(describe_best(study))
        except NoFeasibleTrial as exc:
            missing.append(str(exc))
    if missing:
        raise SearchError("; ".join(missing))
    return 0


def cmd_freeze(args) -> int:
    from search.freeze import freeze_study
    from search.storage import best_feasible_trial

    check_output_dir(args.out, "--out folder")
    studies = _existing_studies(args)
    for study in studies:               # all or nothing: check every study before writing
        best_feasible_trial(study)
    for study in studies:
        fz = freeze_study(study, Path(args.out), from_args(StudyOptions, args).storage)
        cache = f" + {fz.timing_cache}" if fz.timing_cache else ""
        print(f"{study.study_name}: trial {fz.trial} ({fz.value:.3f} ms) -> {fz.config_path}{cache}")
    return 0


def cmd_dashboard(args) -> int:
    from search.dashboard import check_listen, serve
    from search.storage import make_storage

    try:
        import optuna_dashboard  # noqa: F401
    except ImportError:
        raise SearchError("dashboard needs optuna-dashboard (pip install optuna-dashboard)") from None
    check_listen(args.host, args.port)
    sel = from_args(StudyOptions, args)
    storage = make_storage(sel.storage, heartbeat_interval=None, must_exist=True)
    artifacts = check_output_dir(Path(args.artifacts) if args.artifacts else Path(sel.work_dir) / "artifacts",
                                 "artifact folder")
    artifacts.mkdir(parents=True, exist_ok=True)
    serve(storage, artifacts, args.host, args.port)
    return 0


def cmd_export(args) -> int:
    from search.results import export_study
    from search.storage import safe_url

    check_output_file(args.out, "--out file")
    studies = _existing_studies(args)
    data = {"storage": safe_url(from_args(StudyOptions, args).storage),
            "exported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "optuna": optuna.__version__,
            "studies": [export_study(s) for s in studies]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, allow_nan=False))
    print(f"{sum(len(s['trials']) for s in data['studies'])} trials -> {out}")
    return 0


def cmd_plot(args) -> int:
    from search.results import plot_best

    check_output_file(args.out, "--out file")
    print(f"-> {plot_best(_existing_studies(args), Path(args.out))}")
    return 0


def _onnx_path(args, model: str) -> Path:     # --onnx-dir/<model>.onnx when given, else the spec's onnx
    if getattr(args, "onnx_dir", None):
        return Path(args.onnx_dir) / f"{model}.onnx"
    return registry.get(model).onnx_path(from_args(StudyOptions, args).work_dir)


def _plan_space(args, model: str, harness: str):
    """The space `tune --harness HARNESS` samples, from the verb's space options."""
    from search.tuning import make_space

    space = dataclasses.replace(from_args(SpaceOptions, args), harness=harness)
    return make_space(space, model, _onnx_path(args, model))


def cmd_plan(args) -> int:
    from search.plans import enqueue_plan, resolve_base
    from search.storage import open_study

    sel = from_args(StudyOptions, args)
    for model in sel.models:            # the space and the base first: a wrong request writes nothing
        space = _plan_space(args, model, args.harness)
        trial_base = (args.base or "").startswith("trial:")
        base = resolve_base(space, args.base, open_study(sel.storage, model, args.harness, sel.study_name,
                                                         create=False) if trial_base else None)
        study = open_study(sel.storage, model, args.harness, sel.study_name)
        added = enqueue_plan(study, space, args.plan, base, _onnx_path(args, model))
        print(f"{study.study_name}: {len(added)} {args.plan} trials enqueued"
              + (f" ({added[0]} .. {added[-1]})" if added else " (all already in the study)"))
    return 0


def cmd_sensitivity(args) -> int:
    from search.plans import labelled, predict_mixed, resolve_base, sensitivity, sensitivity_rows
    from search.storage import harness_of_study, model_of_study

    if not 0 < args.margin <= 1:      # nan too
        raise SearchError(f"--margin {args.margin}: need a worst metric/threshold ratio in (0, 1]")
    _outputs(args.json)
    out = {}
    for study in _existing_studies(args):
        space = _plan_space(args, model_of_study(study), harness_of_study(study))
        plan_base = resolve_base(space, args.base, study)
        base, effects = sensitivity(study, plan_base.name)
        rows = sensitivity_rows(base, effects)
        print(f"{study.study_name}: FP32 for one group at a time, against all FP16")
        print(f"  {'group':<22}{'worst ratio':>12}{'gain':>9}{'sum ms':>10}{'cost ms':>9}")
        for r in rows:
            print(f"  {r['group']:<22}{r['worst_ratio']:>12.3f}{r['gain']:>9.3f}{r['latency_ms']:>10.1f}{r['cost_ms']:>9.1f}")
        cfg, predicted, chosen = predict_mixed(space, base, effects, args.margin, plan_base)
        print(f"  predicted: FP32 for {', '.join(chosen) or 'no group'} -> worst ratio {predicted:.3f}")
        out[study.study_name] = {"rows": rows, "predicted_fp32_groups": chosen, "predicted_worst_ratio": predicted}
        if args.enqueue:
            label = labelled("sensitivity/predicted", plan_base.name)
            study.enqueue_trial({"int8": False, **space.to_params(cfg)}, user_attrs={"plan": label})
            print(f"  enqueued as {label} (run it with tune)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


def cmd_precision(args) -> int:
    from search.pareto import results_file
    from search.plans import base_name, precision_report
    from search.storage import harness_of_study, model_of_study

    _outputs(args.json)
    rows, summary = [], []
    for study in _existing_studies(args):
        model, harness = model_of_study(study), harness_of_study(study)
        lines, r, s = precision_report(study, _plan_space(args, model, harness), _onnx_path(args, model), harness,
                                       base_name=base_name(args.base), layout=args.layout, enqueue=args.enqueue)
        print("\n".join(lines))
        rows, summary = rows + r, summary + s
    if args.json:
        data = results_file(rows, summary, args.gpu, shlex.join(["python", "-m", "search", *args.argv]))
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(data, indent=1))
        print(f"{len(rows)} rows -> {args.json}")
    return 0


def cmd_pareto(args) -> int:
    from search.pareto import front_json, front_table, pareto_front, plot_fronts, trial_points

    _outputs(args.json, args.out)
    series, fronts = [], []
    for study in _existing_studies(args):
        points = trial_points(study)
        front = pareto_front(points)
        print(front_table(study, front, len(points)))
        series.append((study.study_name, points, front))
        fronts.append(front_json(study, points, front))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(fronts, indent=1))
    if args.out:
        try:
            print(f"-> {plot_fronts(series, Path(args.out))}")
        except SearchError as exc:      # no matplotlib: the table stands
            print(f"note: no plot: {exc}", file=sys.stderr)
    return 0


VERBS = {"tune": cmd_tune, "status": cmd_status, "best": cmd_best, "freeze": cmd_freeze, "dashboard": cmd_dashboard,
         "export": cmd_export, "plan": cmd_plan, "sensitivity": cmd_sensitivity, "precision": cmd_precision,
         "pareto": cmd_pareto, "plot": cmd_plot}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return VERBS[args.verb](args)
    except OneLineError as exc:
        return report(exc)
    except KeyboardInterrupt:
        print("interrupted; the study keeps every finished trial (re-run to continue)", file=sys.stderr)
        return 130
