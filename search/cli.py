"""python -m search VERB: tune, status, best, freeze, dashboard, export, plot, plan, sensitivity.

A session (GPU host; everything but `tune` also works on a CPU machine):
    python -m search tune --model both --trials 100 --gpus 0,1 --max-opt-level 3
    python -m search status
    python -m search best --model encoder
    python -m search freeze --out configs          # configs/<model>.yaml + .timing.cache for build.sh
    python -m search export --out bench/results/study-h100.json
    python -m search dashboard                     # http://127.0.0.1:8080, with trial artifacts

Bad input prints one `error: ...` line and exits 2.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import shlex
import sys
from pathlib import Path
from typing import Sequence

import optuna

from engine.config import ConfigError
from workload.shapes import MODELS

from search.errors import SearchError, StorageError

DEFAULT_WORK = "work"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the usage text is one --help away)."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {self.prog}: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def _storage_args(p: argparse.ArgumentParser, model_default: str = "both") -> None:
    p.add_argument("--storage", default=None,
                   help="SQLAlchemy URL of the study database (default: sqlite:///WORK_DIR/study.db)")
    p.add_argument("--work-dir", default=DEFAULT_WORK, help="work directory (default: work)")
    p.add_argument("--model", default=model_default, help="encoder, decoder or both (default: %(default)s)")
    p.add_argument("--study-name", default=None,
                   help="a study other than wenet-<model> (needs a single --model)")


def _space_args(p: argparse.ArgumentParser) -> None:
    """Options that shape the search space: `plan` must enqueue into the space `tune` samples."""
    p.add_argument("--allow-int8", action="store_true", help="add the INT8 flag and per-group int8 choices")
    p.add_argument("--group-granularity", default="kind", choices=("kind", "block"),
                   help="per-layer precision per sublayer kind (default) or per block and kind")
    p.add_argument("--num-blocks", type=int, default=None,
                   help="blocks for --group-granularity block (default: counted in the ONNX)")


def _storage_url(args) -> str:
    return args.storage or f"sqlite:///{Path(args.work_dir) / 'study.db'}"


def _models(text: str) -> tuple[str, ...]:
    if text == "both":
        return tuple(MODELS)
    if text not in MODELS:
        raise SearchError(f"unknown model {text!r}; expected encoder, decoder or both")
    return (text,)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m search", description="Optuna autotuner for the WeNet TensorRT engines.",
                epilog=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    t = sub.add_parser("tune", help="run trials (build + evaluate engines) and store them in the study",
                       description="Run trials: sample a BuildConfig, build and evaluate it in an isolated "
                                   "worker process, store the result. Re-running continues the study.")
    _storage_args(t)
    t.add_argument("--trials", type=int, default=None, help="new trials per model (split across the GPUs)")
    t.add_argument("--time-budget", type=float, default=None,
                   help="seconds for all models; no trial starts after it (a running one finishes)")
    t.add_argument("--gpus", default="0", help="GPU ids, one tuning process each (default: 0), e.g. 0,1")
    t.add_argument("--trial-timeout", type=float, default=1800.0,
                   help="seconds before a trial's worker is killed (default: 1800)")
    t.add_argument("--onnx-dir", default=None, help="where <model>.onnx are (default: WORK_DIR/onnx)")
    t.add_argument("--data", default=None, help="test data directory (default: WORK_DIR/data)")
    t.add_argument("--grid", default=None, help="test shapes to score: all (default) or e.g. 1x16,16x256")
    t.add_argument("--mode", default="robust", help="evaluate.py timing mode (default: robust)")
    t.add_argument("--runs", type=int, default=None, help="timed runs per test case (default: evaluate.py's)")
    t.add_argument("--warmup", type=int, default=None, help="warm-up runs per test case (default: evaluate.py's)")
    t.add_argument("--seed", type=int, default=None, help="sampler seed (GPU k's process uses seed+k)")
    t.add_argument("--max-opt-level", type=int, default=5,
                   help="cap the builder optimization level for cheap exploration (default: 5)")
    _space_args(t)
    t.add_argument("--plugin-lib", action="append", default=[], help="plugin library for every trial (repeatable)")
    t.add_argument("--keep-plans", action="store_true", help="keep every trial's engine (large)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar, one line per trial")
    t.add_argument("--worker-command", default=None,
                   help="command line standing in for `python -m search.worker` (tests: the fake worker)")

    s = sub.add_parser("status", help="trials by state, feasible count and best value of each study",
                       description="Per study: trials by state, feasible/infeasible counts, best feasible value.")
    _storage_args(s)

    b = sub.add_parser("best", help="the best feasible trial: its config and per-shape table",
                       description="Print the best FEASIBLE trial (every test case Good) of each study.")
    _storage_args(b)

    f = sub.add_parser("freeze", help="write configs/<model>.yaml (+ timing cache) of the best feasible trial",
                       description="Write the best feasible trial's config as OUT/<model>.yaml with a provenance "
                                   "header, and copy its timing cache to OUT/<model>.timing.cache. build.sh "
                                   "builds from these.")
    _storage_args(f)
    f.add_argument("--out", default="configs", help="output directory (default: configs)")

    d = sub.add_parser("dashboard", help="serve optuna-dashboard on the study database and trial artifacts",
                       description="optuna-dashboard over the studies, with each trial's artifacts "
                                   "(config, result.json, eval table, layers, build log).")
    d.add_argument("--storage", default=None, help="SQLAlchemy URL (default: sqlite:///WORK_DIR/study.db)")
    d.add_argument("--work-dir", default=DEFAULT_WORK, help="work directory (default: work)")
    d.add_argument("--artifacts", default=None, help="artifact directory (default: WORK_DIR/artifacts)")
    d.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, local only)")
    d.add_argument("--port", type=int, default=8080, help="port (default: 8080)")

    e = sub.add_parser("export", help="the trial table as JSON (for bench/results/study-<gpu>.json)",
                       description="Every trial of each study as JSON: number, state, value, constraint, "
                                   "params, user attrs. Non-finite numbers are written as \"inf\"/\"nan\".")
    _storage_args(e)
    e.add_argument("--out", required=True, help="JSON file to write")

    pn = sub.add_parser("plan", help="enqueue a planned set of trials: ablation or sensitivity",
                        description="Enqueue fixed configs into the study, labelled in user attr 'plan'; "
                                    "`tune --trials N` runs them first. ablation: no rewrite / each pass / "
                                    "each plugin / every pass, in FP32 and FP16. sensitivity: all FP16, then "
                                    "each layer group alone pinned FP32.")
    _storage_args(pn)
    pn.add_argument("--plan", required=True, help="ablation or sensitivity")
    _space_args(pn)
    pn.add_argument("--onnx-dir", default=None, help="where <model>.onnx are (default: WORK_DIR/onnx)")

    se = sub.add_parser("sensitivity", help="per layer group: error removed and latency added by FP32",
                        description="Read a finished sensitivity plan: each group's effect on the worst "
                                    "metric/threshold ratio and on latency, and the cheapest FP32 set predicted "
                                    "to be Good everywhere (--enqueue adds it to the study as a trial).")
    _storage_args(se)
    se.add_argument("--enqueue", action="store_true", help="enqueue the predicted config (plan label sensitivity/predicted)")
    se.add_argument("--margin", type=float, default=0.9, help="predicted worst ratio to reach (default 0.9)")
    se.add_argument("--json", default=None, help="also write the table as JSON")

    pl = sub.add_parser("plot", help="best feasible objective vs trial number (PNG; needs matplotlib)",
                        description="Plot the best feasible objective so far against the trial number.")
    _storage_args(pl)
    pl.add_argument("--out", default="best.png", help="PNG file to write (default: best.png)")
    return p


# --- studies to read ---------------------------------------------------------------------
def _existing_studies(args) -> list[optuna.Study]:
    """The studies a read-only verb works on; a StorageError when none exists."""
    from search.storage import make_storage, open_study, safe_url

    url = _storage_url(args)
    models = _models(args.model)
    if args.study_name and len(models) > 1:
        raise SearchError("--study-name needs a single --model")
    storage = make_storage(url, heartbeat_interval=None, must_exist=True)
    names = set(optuna.study.get_all_study_names(storage=storage))
    studies = []
    for model in models:
        name = args.study_name or f"wenet-{model}"
        if name in names:
            studies.append(open_study(url, model, name, create=False, storage=storage))
        elif len(models) == 1:
            raise StorageError(f"no study {name!r} in {safe_url(url)}")
        else:
            print(f"note: no study {name!r} in {safe_url(url)}", file=sys.stderr)
    if not studies:
        raise StorageError(f"no study in {safe_url(url)} (run `python -m search tune` first)")
    return studies


# --- verbs ---------------------------------------------------------------------------------
def cmd_tune(args) -> int:
    from search.tuning import TuneOptions, parse_gpus, tune

    work = Path(args.work_dir)
    worker = tuple(shlex.split(args.worker_command)) if args.worker_command else None
    if worker == ():
        raise SearchError("--worker-command is empty")
    opts = TuneOptions(
        models=_models(args.model), n_trials=args.trials, time_budget_s=args.time_budget,
        gpus=parse_gpus(args.gpus), storage=_storage_url(args), study_name=args.study_name,
        trial_timeout_s=args.trial_timeout, onnx_dir=str(Path(args.onnx_dir) if args.onnx_dir else work / "onnx"),
        data_dir=str(Path(args.data) if args.data else work / "data"), work_dir=str(work), grid=args.grid,
        mode=args.mode, runs=args.runs, warmup=args.warmup, seed=args.seed, max_opt_level=args.max_opt_level,
        allow_int8=args.allow_int8, group_granularity=args.group_granularity, num_blocks=args.num_blocks,
        plugin_libs=tuple(args.plugin_lib), worker_command=worker, keep_plans=args.keep_plans,
        progress=not args.no_progress)
    code = 0
    for s in tune(opts):
        best = (f"best feasible so far {s['best_value']:.3f} ms (trial {s['best_trial']})"
                if s["best_trial"] is not None else "no feasible trial yet")
        print(f"{s['study']}: {s['new_trials']} new trials ({s['complete']} complete, {s['fail']} failed, "
              f"{s['pruned']} pruned); {best}")
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

    studies = _existing_studies(args)
    for study in studies:               # all or nothing: check every study before writing
        best_feasible_trial(study)
    for study in studies:
        fz = freeze_study(study, Path(args.out), _storage_url(args))
        cache = f" + {fz.timing_cache}" if fz.timing_cache else ""
        print(f"{study.study_name}: trial {fz.trial} ({fz.value:.3f} ms) -> {fz.config_path}{cache}")
    return 0


def cmd_dashboard(args) -> int:
    from search.storage import make_storage, safe_url

    try:
        import optuna_dashboard
    except ImportError:
        raise SearchError("dashboard needs optuna-dashboard (pip install optuna-dashboard)") from None
    url = _storage_url(args)
    storage = make_storage(url, heartbeat_interval=None, must_exist=True)
    artifacts = Path(args.artifacts) if args.artifacts else Path(args.work_dir) / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    store = optuna.artifacts.FileSystemArtifactStore(base_path=str(artifacts))
    print(f"optuna-dashboard on http://{args.host}:{args.port} for {safe_url(url)}", file=sys.stderr)
    optuna_dashboard.run_server(storage, host=args.host, port=args.port, artifact_store=store)
    return 0


def cmd_export(args) -> int:
    from search.results import export_study
    from search.storage import safe_url

    studies = _existing_studies(args)
    data = {"storage": safe_url(_storage_url(args)),
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

    out = plot_best(_existing_studies(args), Path(args.out))
    print(f"-> {out}")
    return 0


def _plan_space(args, model: str):
    from search.tuning import TuneOptions, make_space

    onnx_dir = getattr(args, "onnx_dir", None) or str(Path(args.work_dir) / "onnx")
    opts = TuneOptions(models=(model,), n_trials=1, onnx_dir=onnx_dir,
                       allow_int8=getattr(args, "allow_int8", False),
                       group_granularity=getattr(args, "group_granularity", "kind"),
                       num_blocks=getattr(args, "num_blocks", None))
    return make_space(opts, model)


def cmd_plan(args) -> int:
    from search.plans import enqueue_plan
    from search.storage import open_study

    for model in _models(args.model):
        study = open_study(_storage_url(args), model, args.study_name)
        added = enqueue_plan(study, _plan_space(args, model), args.plan)
        print(f"{study.study_name}: {len(added)} {args.plan} trials enqueued"
              + (f" ({added[0]} .. {added[-1]})" if added else " (all already in the study)"))
    return 0


def cmd_sensitivity(args) -> int:
    from search.plans import predict_mixed, sensitivity, sensitivity_rows

    out = {}
    for study in _existing_studies(args):
        base, effects = sensitivity(study)
        rows = sensitivity_rows(base, effects)
        print(f"{study.study_name}: FP32 for one group at a time, against all FP16")
        print(f"  {'group':<22}{'worst ratio':>12}{'gain':>9}{'sum ms':>10}{'cost ms':>9}")
        for r in rows:
            print(f"  {r['group']:<22}{r['worst_ratio']:>12.3f}{r['gain']:>9.3f}{r['latency_ms']:>10.1f}{r['cost_ms']:>9.1f}")
        model = study.user_attrs.get("model") or study.study_name.rsplit("-", 1)[-1]
        space = _plan_space(args, model)
        cfg, predicted, chosen = predict_mixed(space, base, effects, args.margin)
        print(f"  predicted: FP32 for {', '.join(chosen) or 'no group'} -> worst ratio {predicted:.3f}")
        out[study.study_name] = {"rows": rows, "predicted_fp32_groups": chosen, "predicted_worst_ratio": predicted}
        if args.enqueue:
            study.enqueue_trial(space.to_params(cfg), user_attrs={"plan": "sensitivity/predicted"})
            print("  enqueued as sensitivity/predicted (run it with tune)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


VERBS = {"plan": cmd_plan, "sensitivity": cmd_sensitivity, "tune": cmd_tune, "status": cmd_status, "best": cmd_best, "freeze": cmd_freeze,
         "dashboard": cmd_dashboard, "export": cmd_export, "plot": cmd_plot}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return VERBS[args.verb](args)
    except (SearchError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the study keeps every finished trial (re-run to continue)", file=sys.stderr)
        return 130
