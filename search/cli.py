"""python -m search VERB: tune, status, best, freeze, dashboard, export, import, plan, sensitivity, precision, pareto, plot.

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

import dataclasses
import datetime as _dt
import json
import shlex
import sys
from pathlib import Path
from typing import Sequence

import optuna

from workload import registry
from workload.errors import OneLineError, report
from workload.outputs import check_output_dir, check_output_file

from search.errors import SearchError
from search.cli_parser import build_parser
from search.options import SpaceOptions, StudyOptions, TuneOptions, from_args


# --- studies to read ---------------------------------------------------------------------
def _existing_studies(args, named: bool = False) -> list[optuna.Study]:
    """The studies a read-only verb works on (named: with those under names of their own); a StorageError
    when none exists."""
    from search.storage import existing_studies

    sel = from_args(StudyOptions, args)
    return existing_studies(sel.storage, sel.models, args.harness, sel.study_name, named=named)


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

    for study in _existing_studies(args, named=True):
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
    studies = _existing_studies(args, named=True)
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
    print(f"-> {plot_best(_existing_studies(args, named=True), Path(args.out))}")
    return 0


def _onnx_path(args, model: str) -> Path:     # --onnx-dir/<model>.onnx when given, else the spec's onnx
    if getattr(args, "onnx_dir", None):
        return Path(args.onnx_dir) / f"{model}.onnx"
    return registry.get(model).onnx_path(from_args(StudyOptions, args).work_dir)


def _plan_space(args, model: str, harness: str):
    """The space `tune --harness HARNESS` samples, from the verb's space options."""
    from search.tuning import make_space

    space = dataclasses.replace(from_args(SpaceOptions, args), harness=harness)
    return make_space(space, model, _onnx_path(args, model), tuple(getattr(args, "plugin_libs", ())))


def cmd_plan(args) -> int:
    from search.plans import enqueue_plan, resolve_base
    from search.seeds import HARNESS_SEED_LABELS, seed_labels, seed_study
    from search.storage import open_study

    sel = from_args(StudyOptions, args)
    for model in sel.models:            # the space and the base first: a wrong request writes nothing
        space = _plan_space(args, model, args.harness)
        trial_base = (args.base or "").startswith("trial:")
        base = resolve_base(space, args.base, open_study(sel.storage, model, args.harness, sel.study_name,
                                                         create=False) if trial_base else None)
        study = open_study(sel.storage, model, args.harness, sel.study_name)
        # a new study gets the harness's own seeds (and a seed base) first: the plan's engines are compared
        # with them (the precision table's FP32 row), so they run before the plan; `tune` adds no others
        seeded = seed_study(study, space, HARNESS_SEED_LABELS[args.harness] + ((args.base,) if args.base in
                                                                                 seed_labels(args.harness) else ()))
        added = enqueue_plan(study, space, args.plan, base, _onnx_path(args, model))
        if seeded:
            print(f"{study.study_name}: new study, its {seeded} seed trials enqueued first")
        print(f"{study.study_name}: {len(added)} {args.plan} trials enqueued"
              + (f" ({added[0]} .. {added[-1]})" if added else " (all already in the study)"))
    return 0


def cmd_sensitivity(args) -> int:
    from search.plans import (groups_worth_a_dimension, labelled, predict_mixed, resolve_base, sensitivity,
                              sensitivity_rows)
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
        batches = sorted(rows[0]["by_batch"])          # the worst ratio per batch: per profile in per_batch layouts
        print(f"{study.study_name}: FP32 for one group at a time, against all FP16")
        print(f"  {'group':<22}{'worst ratio':>12}{'gain':>9}{'sum ms':>10}{'cost ms':>9}"
              + "".join(f"{f'batch {b}':>11}" for b in batches))
        for r in rows:
            print(f"  {r['group']:<22}{r['worst_ratio']:>12.3f}{r['gain']:>9.3f}{r['latency_ms']:>10.1f}"
                  f"{r['cost_ms']:>9.1f}" + "".join(f"{r['by_batch'].get(b, float('nan')):>11.3f}" for b in batches))
        for e in effects:
            if e.differs:
                print(f"  warning: {e.group}'s trial differs from the all-FP16 one in {', '.join(e.differs)}, not "
                      "only its pin: left out of the prediction and the groups below")
        cfg, predicted, chosen = predict_mixed(space, base, effects, args.margin, plan_base)
        print(f"  predicted: FP32 for {', '.join(chosen) or 'no group'} -> worst ratio {predicted:.3f}")
        worth = groups_worth_a_dimension(base, effects)
        print(f"  groups worth a dimension: {'--precision-groups ' + ','.join(worth) if worth else 'none'} "
              "(an FP32 pin that removed error at some batch)")
        out[study.study_name] = {"rows": rows, "predicted_fp32_groups": chosen, "predicted_worst_ratio": predicted,
                                 "precision_groups": worth}
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
                                       base_name=base_name(args.base), layout=args.layout, enqueue=args.enqueue,
                                       work_dir=Path(from_args(StudyOptions, args).work_dir))
        print("\n".join(lines))
        rows, summary = rows + r, summary + s
    if args.json:
        data = results_file(rows, summary, args.gpu, shlex.join(["python", "-m", "search", *args.argv]))
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(data, indent=1))
        print(f"{len(rows)} rows -> {args.json}")
    return 0


def cmd_pareto(args) -> int:
    from search.pareto import (front_json, front_rows, front_table, pareto_front, plot_fronts, results_file,
                               trial_points)
    from search.storage import harness_of_study

    _outputs(args.json, args.out)
    series, fronts, rows = [], [], []
    work_dir = Path(from_args(StudyOptions, args).work_dir)
    for study in _existing_studies(args):
        points = trial_points(study)
        front = pareto_front(points)
        print(front_table(study, front, len(points)))
        series.append((study.study_name, points, front))
        fronts.append(front_json(study, points, front))
        rows += front_rows(study, front, harness_of_study(study), work_dir)
    if args.json:       # the bench/results format: the front trials per shape, the fronts beside them
        data = {**results_file(rows, [], args.gpu, shlex.join(["python", "-m", "search", *args.argv])),
                "fronts": fronts}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(data, indent=1))
    if args.out:
        try:
            print(f"-> {plot_fronts(series, Path(args.out))}")
        except SearchError as exc:      # no matplotlib: the table stands
            print(f"note: no plot: {exc}", file=sys.stderr)
    return 0


def _kept(storage: str, exported: dict, study_name: str | None) -> bool:
    """Whether the storage already holds trials of this exported study (said so on stdout)."""
    from search.storage import StorageError, open_study

    try:
        study = open_study(storage, exported["model"], exported["harness"], study_name or exported.get("study"),
                           create=False)
    except StorageError:        # no database yet, or no such study in it
        return False
    held = len(study.get_trials(deepcopy=False))
    if held:
        print(f"{study.study_name}: kept, the storage holds it with {held} trials")
    return held > 0


def cmd_import(args) -> int:
    from search.storage import open_study
    from search.study_import import import_study, prepare_import, studies_in

    sel = from_args(StudyOptions, args)
    try:
        data = json.loads(Path(args.export).read_text())
    except (OSError, ValueError) as exc:
        raise SearchError(f"cannot read export {args.export}: {exc}") from None
    exported = studies_in(data, lambda s: s.get("model") in sel.models and args.harness in ("all", s.get("harness")))
    if args.if_missing:     # a study the storage holds is the newer record: kept, and not checked against a space
        exported = [ex for ex in exported if not _kept(sel.storage, ex, sel.study_name)]
    # every study checked against its space before anything is written
    prepared = [(ex, prepare_import(ex, _plan_space(args, ex["model"], ex["harness"]))) for ex in exported]
    for ex, prep in prepared:
        study = open_study(sel.storage, ex["model"], ex["harness"], sel.study_name or ex.get("study"))
        done = import_study(ex, prep, study)
        print(f"{done.study}: {done.added} trials imported, {done.requeued} enqueued again"
              + (f", {done.skipped} left out (running, or planned without params)" if done.skipped else ""))
    return 0


VERBS = {"tune": cmd_tune, "status": cmd_status, "best": cmd_best, "freeze": cmd_freeze, "dashboard": cmd_dashboard,
         "export": cmd_export, "import": cmd_import, "plan": cmd_plan, "sensitivity": cmd_sensitivity, "precision": cmd_precision,
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
