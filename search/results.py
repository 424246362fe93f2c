"""Reading a study back: status counts, the best feasible trial, JSON export, the progress plot."""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import distribution_to_json
from optuna.trial import FrozenTrial, TrialState

from engine.config import BuildConfig, ConfigError

from search.errors import SearchError
from search.gpu_share import WAIT_STAGE
from search.request import STAGE_ATTRS
from search.storage import best_feasible_trial, feasible_trials, harness_of_study, trial_constraint


def config_of(trial: FrozenTrial) -> BuildConfig:
    """The BuildConfig a trial built (user_attr config_yaml, written before the build)."""
    text = trial.user_attrs.get("config_yaml")
    if not text:
        raise SearchError(f"trial {trial.number} has no config_yaml attribute")
    try:
        return BuildConfig.from_dict(yaml.safe_load(text))
    except (ConfigError, yaml.YAMLError) as exc:
        raise SearchError(f"trial {trial.number}: stored config is not valid ({exc})") from None


def summary(study: optuna.Study) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    feasible = feasible_trials(study)
    out: dict[str, Any] = {
        "study": study.study_name,
        "model": study.user_attrs.get("model"),
        "harness": _harness(study),
        "trials": len(trials),
        "states": {s.name: sum(t.state == s for t in trials) for s in TrialState},
        "feasible": len(feasible),
        "infeasible": len(complete) - len(feasible),
        "best_value": None, "best_trial": None,
    }
    if feasible:
        best = best_feasible_trial(study)
        out["best_value"], out["best_trial"] = best.value, best.number
    out["time"] = time_spent(trials)
    return out


# the user attrs of the worker's stages (search.request); a trial that shared no GPU has no wait
WAIT_ATTR = STAGE_ATTRS[WAIT_STAGE]
STAGES = tuple(v for v in STAGE_ATTRS.values() if v != WAIT_ATTR)


def time_spent(trials: list[FrozenTrial]) -> dict[str, Any]:
    """Where the study's device time went: the finished trials' wall time, and of the trials that
    recorded their stages, the seconds of each (the rest is worker start-up, inspection, artifacts)."""
    timed = [(t, d) for t in trials if t.state.is_finished() and (d := trial_duration_s(t)) is not None]
    staged = [(t, d) for t, d in timed if all(isinstance(t.user_attrs.get(k), (int, float)) for k in STAGES)]
    return {"trials": len(timed), "trial_s": round(sum(d for _, d in timed), 1),
            "median_s": round(statistics.median(d for _, d in timed), 1) if timed else None,
            "staged": len(staged), "staged_s": round(sum(d for _, d in staged), 1),
            **{k: round(sum(t.user_attrs[k] for t, _ in staged), 1) for k in STAGES},
            WAIT_ATTR: round(sum(t.user_attrs.get(WAIT_ATTR) or 0.0 for t, _ in staged), 1)}


def format_time(t: dict[str, Any]) -> str | None:
    """'2890 s in 53 trials (median 48 s); of 40 with stage times: build 62%, evaluate 21%, prepare 9%'."""
    if not t or not t.get("trials"):
        return None
    line = f"{t['trial_s']:.0f} s in {t['trials']} trials (median {t['median_s']:.0f} s)"
    if t.get("staged") and t.get("staged_s"):
        names = ("build", "evaluate", "prepare") + ((WAIT_STAGE,) if t.get(WAIT_ATTR) else ())
        shares = ", ".join(f"{name} {t[STAGE_ATTRS[name]] / t['staged_s']:.0%}" for name in names)
        line += f"; of {t['staged']} with stage times: {shares}"
    return line


def _harness(study: optuna.Study) -> str | None:
    try:
        return harness_of_study(study)
    except SearchError:
        return None


def format_summary(s: dict[str, Any]) -> str:
    states = ", ".join(f"{k.lower()} {v}" for k, v in s["states"].items() if v)
    best = (f"best feasible {s['best_value']:.3f} ms (trial {s['best_trial']})" if s["best_trial"] is not None
            else "no feasible trial yet")
    time = format_time(s.get("time"))
    return (f"{s['study']} ({s['model'] or '?'}, {s['harness'] or '?'} harness): {s['trials']} trials "
            f"({states or 'none'}); "
            f"{s['feasible']} feasible, {s['infeasible']} infeasible; {best}"
            + (f"\n  time: {time}" if time else ""))


def case_table(trial: FrozenTrial) -> str:
    rows = trial.user_attrs.get("cases") or []
    lines = [f"{'bs':>4} {'sl':>5} {'latency(ms)':>12} {'worst/limit':>12}  check {'profile':>7} {'graph':>5}"]
    for r in rows:
        ratio = f"{r['worst_ratio']:12.3g}" if r.get("worst_ratio") is not None else f"{'inf':>12}"
        graph = {True: "yes", False: "no"}.get(r.get("cuda_graph"), "-")
        lines.append(f"{r['batch']:>4} {r['length']:>5} {r['latency_ms']:12.3f} {ratio}  "
                     f"{'Good' if r['good'] else 'Bad':<5} {r.get('profile', '-')!s:>7} {graph:>5}")
    total = sum(r["latency_ms"] for r in rows)
    lines.append(f"total latency {total:.3f} ms over {len(rows)} cases; objective {trial.value:.3f}")
    return "\n".join(lines)


def describe_best(study: optuna.Study) -> str:
    best = best_feasible_trial(study)
    harness = best.user_attrs.get("harness") or _harness(study) or "?"
    return (f"{study.study_name}: {harness} harness, trial {best.number}, objective {best.value:.3f} ms, "
            f"constraint {trial_constraint(best):.3g}\n--- config ---\n{config_of(best).to_yaml()}"
            f"--- test cases ---\n{case_table(best)}")


# --- export ---------------------------------------------------------------------------------
def _plain(x: Any) -> Any:
    """Strict JSON: non-finite floats become the strings "inf", "-inf", "nan"."""
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def trial_duration_s(t: FrozenTrial) -> float | None:
    """A trial's whole wall time: the objective's own measure (user_attr duration_s), else Optuna's
    start/complete timestamps; None while it runs, and for a stale trial (search.stale: its timestamps
    span the time until a later tuner failed it, not a run)."""
    if t.user_attrs.get("interrupted") == "stale":
        return None
    measured = t.user_attrs.get("duration_s")
    if isinstance(measured, (int, float)):
        return float(measured)
    return t.duration.total_seconds() if t.duration else None


def trial_record(t: FrozenTrial) -> dict[str, Any]:
    c = trial_constraint(t)
    return _plain({
        "number": t.number, "state": t.state.name, "value": t.value, "constraint": c,
        "feasible": t.state == TrialState.COMPLETE and c is not None and c <= 0,
        "duration_s": trial_duration_s(t),
        "engine_cache": t.user_attrs.get("engine_cache"),           # hit | miss | off (None: never built)
        "prune_reason": t.user_attrs.get("prune_reason"),
        "fail_reason": t.user_attrs.get("fail_reason"),
        "intermediate_values": {str(k): v for k, v in sorted(t.intermediate_values.items())},
        # a WAITING trial's params are the ones it was enqueued with
        "params": t.params or t.system_attrs.get("fixed_params", {}), "user_attrs": t.user_attrs,
        # what `search import` needs to give the trial back to a sampler
        "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()},
        "datetime_start": t.datetime_start.isoformat() if t.datetime_start else None,
        "datetime_complete": t.datetime_complete.isoformat() if t.datetime_complete else None,
    })


def share_distributions(records: list[dict[str, Any]]) -> dict[str, str]:
    """Move each parameter's most common distribution out of the trial records into one study table.

    Every trial of a study repeats the same distributions (a third of an export's size); a record keeps
    only the ones that differ, with `distributions_shared` set where the table supplies the rest
    (`search import` puts them back, study_import.full_distributions)."""
    from collections import Counter

    counts: dict[str, Counter] = {}
    for r in records:
        for name, text in r["distributions"].items():
            counts.setdefault(name, Counter())[text] += 1
    table = {name: c.most_common(1)[0][0] for name, c in sorted(counts.items())}
    for r in records:
        own = r.pop("distributions")
        if own:
            r["distributions_shared"] = True
            r["distributions"] = {name: text for name, text in own.items() if table[name] != text}
    return table


def export_study(study: optuna.Study) -> dict[str, Any]:
    records = [trial_record(t) for t in study.get_trials(deepcopy=False)]
    table = share_distributions(records)
    return {"study": study.study_name, "model": study.user_attrs.get("model"), "harness": _harness(study),
            "summary": _plain(summary(study)), "user_attrs": _plain(study.user_attrs),
            "distributions": table, "trials": records}


# --- plot -----------------------------------------------------------------------------------
def best_so_far(study: optuna.Study) -> list[tuple[int, float]]:
    """(trial number, best feasible value up to it) at every feasible improvement-or-not trial."""
    best = math.inf
    out = []
    for t in sorted(feasible_trials(study), key=lambda t: t.number):
        best = min(best, t.value)
        out.append((t.number, best))
    return out


def plot_best(studies: list[optuna.Study], out: Path) -> Path:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SearchError("plot needs matplotlib (pip install matplotlib); `export` writes the same data as JSON") from None
    series = [(s.study_name, best_so_far(s)) for s in studies]
    if not any(points for _, points in series):
        raise SearchError("no feasible trial to plot")
    fig, axes = plt.subplots(len(series), 1, figsize=(7, 3.2 * len(series)), squeeze=False)
    for ax, (name, points) in zip(axes[:, 0], series):
        if points:
            xs, ys = zip(*points)
            ax.step(xs, ys, where="post", marker="o", markersize=3)
        ax.set_title(name)
        ax.set_xlabel("trial number")
        ax.set_ylabel("best feasible objective (ms)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
