"""The argument parser of `python -m search`: every verb's flags (option groups from search/options.py)."""
from __future__ import annotations

import argparse

from engine.config import LAYOUTS
from search.plans import PLANS
from search.options import HARNESS_NAMES, SpaceOptions, StudyOptions, TuneOptions, add_arguments
from workload.errors import OneLineParser

USAGE = """A session (GPU host; everything but `tune` also works on a CPU machine):
    python -m search tune --model both --harness serving --trials 100 --gpus 0,1 --max-opt-level 4
    python -m search status                        # every study: wenet-<model>-<harness>
    python -m search best --model encoder --harness contest
    python -m search freeze --harness serving      # configs/<model>.yaml + .timing.cache for build.sh
    python -m search export --out bench/results/study-h100.json
    python -m search dashboard                     # http://127.0.0.1:8080, with trial artifacts"""

def _layout_text(text: str) -> str:
    """--layout: a layout name, or a layout as BuildConfig.describe_layout writes it (name[buckets]...)."""
    if text.split("[", 1)[0] not in LAYOUTS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected one of {', '.join(LAYOUTS)}, optionally with its "
                                         "buckets as the study labels them, e.g. per_batch[1,4,16]")
    return text


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
    add_arguments(p, TuneOptions, only=("onnx_dir", "plugin_libs"))      # the plugins TensorRT can load


def _base_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default=None, help="the config precision plans start from: a seed of the harness "
                                                "(e.g. per_batch), trial:N or a YAML file; labels end in @NAME")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m search",
                      description="Optuna autotuner for TensorRT engines (--workload: any ONNX).",
                      epilog=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    pn.add_argument("--plan", required=True, choices=PLANS,
                    help="ablation, sensitivity, bisect, bisect_reverse, rules, or references (the base's FP32 "
                         "and TF32 twins)")
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
    pr.add_argument("--layout", default=None, type=_layout_text,
                    help="layout of the rows (default: the best lower-precision trial's): a layout name such as "
                         "per_batch (any buckets), or one layout exactly as the study labels it, e.g. "
                         "'per_batch[1,4,16]'")
    pr.add_argument("--json", default=None, help="write the four engines' per-shape rows (bench/results format)")
    pr.add_argument("--gpu", default="unknown", help="GPU name for the JSON header")

    pa = sub.add_parser("pareto", help="the latency / worst-ratio Pareto front of each study (PNG with matplotlib)",
                        description="Non-dominated COMPLETE trials: summed latency against worst metric/threshold "
                                    "ratio. --out plots every trial grey and the front highlighted.")
    _study_args(pa)
    pa.add_argument("--out", default=None, help="PNG to write (needs matplotlib; without it only the table)")
    pa.add_argument("--json", default=None, help="also write the fronts, and their trials' per-shape rows "
                                                 "(bench/results format), as JSON")
    pa.add_argument("--gpu", default="unknown", help="GPU name for the JSON header")

    im = sub.add_parser("import", help="re-create the trials of a `search export` file in an empty study",
                        description="Resume a study across device sessions: every COMPLETE / PRUNED / FAIL trial "
                                    "of the export is added (params, value, constraint, attrs), WAITING ones are "
                                    "enqueued again. Old exports without distributions need the space flags the "
                                    "study was tuned with.")
    _study_args(im)
    im.add_argument("export", help="JSON written by `search export` (e.g. bench/results/study-h200.json)")
    im.add_argument("--if-missing", action="store_true",
                    help="import only the studies the storage lacks (or has without trials), keep the others: "
                         "a GPU host resumes from the export unless it carried its database")
    _space_args(im)

    pl = sub.add_parser("plot", help="best feasible objective vs trial number (PNG; needs matplotlib)",
                        description="Plot the best feasible objective so far against the trial number.")
    _study_args(pl)
    pl.add_argument("--out", default="best.png", help="PNG file to write (default: best.png)")
    return p
