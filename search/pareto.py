"""Latency against error: the Pareto front of a study, and the per-precision rows of the best engines.

Every COMPLETE trial is a point (summed latency over its test cases in ms, worst
metric/threshold ratio over its cases); a trial is on the front when no other trial
is at least as fast and at least as accurate and strictly better in one of them.
Feasible means worst ratio < 1 (every case Good). `python -m search pareto` prints
the front (and plots it, with matplotlib); `python -m search precision --json` writes
the FP32 / all-FP16 / best mixed / best INT8-mixed engines of each model in the
bench/results format (../shared/conventions/results.md).

Latency is the raw sum of user attr `latency_ms` (per shape), the trial's value when
that is missing (the objective: the same sum when every case is Good). The worst ratio
is the largest case `worst_ratio`, else the constraint + 1 (constraint = worst ratio - 1).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from engine.config import BuildConfig, ConfigError, precision_class
from engine.evaluation import convention_rows

from search.errors import SearchError
from search.storage import trial_constraint

PRECISION_CLASSES = ("fp32", "tf32", "fp16", "mixed", "int8")


def trial_latency_ms(t: FrozenTrial) -> float:
    per_shape = t.user_attrs.get("latency_ms")
    if isinstance(per_shape, dict) and per_shape:
        return float(sum(per_shape.values()))
    return float(t.value) if t.value is not None else math.inf


def trial_worst_ratio(t: FrozenTrial) -> float:
    cases = t.user_attrs.get("cases")
    if cases:
        return max(math.inf if c.get("worst_ratio") is None else float(c["worst_ratio"]) for c in cases)
    c = trial_constraint(t)
    return math.inf if c is None or c >= 1e9 else c + 1.0


def trial_config(t: FrozenTrial) -> BuildConfig | None:
    try:
        return BuildConfig.from_dict(yaml.safe_load(t.user_attrs.get("config_yaml") or ""))
    except (ConfigError, yaml.YAMLError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class Point:
    trial: int
    latency_ms: float
    worst_ratio: float
    label: str                 # plan / seed label, '' for a sampled trial
    precision: str             # precision_class
    layout: str                # BuildConfig.describe_layout()
    value: float | None

    @property
    def feasible(self) -> bool:
        return self.worst_ratio < 1


def trial_points(study: optuna.Study) -> list[Point]:
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        latency = trial_latency_ms(t)
        if not math.isfinite(latency):
            continue
        cfg = trial_config(t)
        out.append(Point(t.number, latency, trial_worst_ratio(t),
                         str(t.user_attrs.get("plan") or t.user_attrs.get("seed") or ""),
                         precision_class(cfg), cfg.describe_layout() if cfg else "?", t.value))
    return out


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The non-dominated points (both axes minimized), fastest first; identical points all stay."""
    front: list[Point] = []
    for p in sorted(points, key=lambda p: (p.latency_ms, p.worst_ratio, p.trial)):
        if not front or p.worst_ratio < front[-1].worst_ratio:
            front.append(p)
        elif p.worst_ratio == front[-1].worst_ratio and p.latency_ms == front[-1].latency_ms:
            front.append(p)
    return front


def front_table(study: optuna.Study, front: Sequence[Point], n_points: int) -> str:
    lines = [f"{study.study_name}: {len(front)} of {n_points} complete trials on the latency / worst-ratio front",
             f"  {'trial':>5} {'sum ms':>9} {'worst':>8}  {'ok':<4} {'precision':<9} {'layout':<20} label"]
    for p in front:
        worst = f"{p.worst_ratio:8.3f}" if math.isfinite(p.worst_ratio) else f"{'inf':>8}"
        lines.append(f"  {p.trial:>5} {p.latency_ms:9.2f} {worst}  {'Good' if p.feasible else 'Bad':<4} "
                     f"{p.precision:<9} {p.layout:<20} {p.label}")
    return "\n".join(lines)


def front_json(study: optuna.Study, points: Sequence[Point], front: Sequence[Point]) -> dict[str, Any]:
    def row(p: Point) -> dict[str, Any]:
        return {**p.__dict__, "feasible": p.feasible,
                "worst_ratio": p.worst_ratio if math.isfinite(p.worst_ratio) else None}
    return {"study": study.study_name, "model": study.user_attrs.get("model"), "points": len(points),
            "front": [row(p) for p in front]}


def front_rows(study: optuna.Study, front: Sequence[Point], harness: str,
               work_dir: Path | None = None) -> list[dict[str, Any]]:
    """The front's trials per shape, in the bench/results format (label: 'front trial N (plan)')."""
    model, trials = study.user_attrs.get("model"), study.get_trials(deepcopy=False)
    out: list[dict[str, Any]] = []
    for p in front:
        label = f"front trial {p.trial}" + (f" ({p.label})" if p.label else "")
        out += trial_rows(model, trials[p.trial], p, label, harness, work_dir)[0]
    return out


def plot_fronts(series: Sequence[tuple[str, list[Point], list[Point]]], out: Path) -> Path:
    """One panel per study: every trial grey, the front highlighted, the feasibility line at ratio 1."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SearchError("the plot needs matplotlib (pip install matplotlib)") from None
    fig, axes = plt.subplots(len(series), 1, figsize=(7, 3.6 * len(series)), squeeze=False)
    for ax, (name, points, front) in zip(axes[:, 0], series):
        finite = [p for p in points if math.isfinite(p.worst_ratio) and p.worst_ratio > 0]
        ax.scatter([p.latency_ms for p in finite], [p.worst_ratio for p in finite], s=12, color="0.7",
                   label="trials")
        shown = [p for p in front if p in finite]
        if shown:
            ax.step([p.latency_ms for p in shown], [p.worst_ratio for p in shown], where="post", color="C3",
                    marker="o", markersize=5, label="Pareto front")
            for p in shown:
                ax.annotate(str(p.trial), (p.latency_ms, p.worst_ratio), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        ax.axhline(1.0, color="C2", linestyle="--", linewidth=1, label="feasible below (worst ratio 1)")
        if finite:
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("summed latency over the test cases (ms)")
        ax.set_ylabel("worst metric / threshold")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


# --- the best engine per precision class, as bench/results rows ---------------------------------
def best_per_precision(study: optuna.Study, layout: str | None = None) -> tuple[str | None, dict[str, Point]]:
    """(layout, {class: point}) on one layout: `layout` (describe_layout text or layout name), else
    the layout of the best feasible lower-precision trial. Per class: feasible first, then lowest value."""
    points = [p for p in trial_points(study) if p.precision in PRECISION_CLASSES and p.value is not None]

    def rank(p: Point) -> tuple:
        return (not p.feasible, p.value if math.isfinite(p.value) else math.inf, p.trial)

    if layout is None:
        lower = sorted((p for p in points if p.precision != "fp32"), key=rank) or sorted(points, key=rank)
        layout = lower[0].layout if lower else None
    chosen: dict[str, Point] = {}
    for p in sorted(points, key=rank):
        if layout in (p.layout, p.layout.split("[", 1)[0]) and p.precision not in chosen:
            chosen[p.precision] = p
    return layout, {c: chosen[c] for c in PRECISION_CLASSES if c in chosen}


def trial_file(t: FrozenTrial, name: str, work_dir: Path | None = None) -> Path:
    """A file of the trial's directory; where the study moved off the host it ran on (the stored
    path is gone), the same trials/<study>/<number> under `work_dir`, if that holds it."""
    stored = Path(str(t.user_attrs.get("trial_dir", "")))
    if (stored / name).is_file() or work_dir is None or not stored.name:
        return stored / name
    moved = Path(work_dir) / "trials" / stored.parent.name / stored.name / name
    return moved if moved.is_file() else stored / name


def _case_rows(t: FrozenTrial, work_dir: Path | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-case rows with every metric from the trial's result.json; the stored cases when it is gone."""
    path = trial_file(t, "result.json", work_dir)
    try:
        result = json.loads(path.read_text())
        return result.get("cases") or [], result
    except (OSError, ValueError):
        return list(t.user_attrs.get("cases") or []), {}


def _honoured(t: FrozenTrial, cfg: BuildConfig, result: dict[str, Any], work_dir: Path | None = None) -> bool | None:
    """Whether the engine ran the pinned groups as requested: from its layer info, else the worker's verdict."""
    from engine.inspect import honoured, load_layer_info

    if not cfg.layer_precision:
        return None
    path = trial_file(t, "layers.json", work_dir)
    if not path.is_file():
        verdict = result.get("honoured")
        return verdict.get("honoured") if isinstance(verdict, dict) else None
    try:
        return honoured(cfg, load_layer_info(path))["honoured"]
    except Exception:
        return None


def trial_rows(model: str, t: FrozenTrial, p: Point, label: str, harness: str,
               work_dir: Path | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(one bench/results row per measured shape of trial t under `label`, its result.json or {})."""
    cases, result = _case_rows(t, work_dir)
    build_s = result.get("build_s", t.user_attrs.get("build_s"))
    rows = convention_rows(model, label, cases, layout=p.layout, precision=p.precision, build_s=build_s)
    return [{**r, "harness": harness, "worst_ratio": c.get("worst_ratio"), "trial": p.trial}
            for r, c in zip(rows, cases)], result


def precision_rows(study: optuna.Study, harness: str, layout: str | None = None,
                   work_dir: Path | None = None) -> tuple[list, list]:
    """(rows, summary) of the four engines of a study's model: one row per shape, keys of results.md.

    work_dir: where the trials' directories are when the study was brought here from another host."""
    model = study.user_attrs.get("model")
    layout, chosen = best_per_precision(study, layout)
    fp32, tf32 = chosen.get("fp32"), chosen.get("tf32")
    trials = study.get_trials(deepcopy=False)
    rows, summary = [], []
    for prec, p in chosen.items():
        t = trials[p.trial]
        cfg = trial_config(t)
        label = f"{prec} {p.layout} trial {p.trial}" + (f" ({p.label})" if p.label else "")
        engine_rows, result = trial_rows(model, t, p, label, harness, work_dir)
        rows += engine_rows
        summary.append({"model": model, "precision": prec, "label": label, "trial": p.trial,
                        "latency_sum_ms": p.latency_ms, "worst_ratio": p.worst_ratio if math.isfinite(p.worst_ratio)
                        else None, "feasible": p.feasible,
                        "speedup_vs_fp32": fp32.latency_ms / p.latency_ms if fp32 and p.latency_ms > 0 else None,
                        # TensorRT builds FP32 with TF32 unless told not to: the speed-up over that engine too
                        "speedup_vs_tf32": tf32.latency_ms / p.latency_ms if tf32 and p.latency_ms > 0 else None,
                        "layer_precision": cfg.layer_precision if cfg else None,
                        "precision_counts": t.user_attrs.get("precision_counts"),
                        "honoured": _honoured(t, cfg, result, work_dir) if cfg else None,
                        "tensorrt": (result.get("build_report") or {}).get("tensorrt"),
                        "metrics": "result.json" if result else "study (no per-metric errors)"})
    return rows, summary


def results_file(rows: list, summary: list, gpu: str, command: str) -> dict[str, Any]:
    """The bench/results JSON: header (gpu, tensorrt of the trials, torch, date, command), rows, summary.

    torch is None: the file has no torch rows, and the torch of the machine writing it (which may
    not be the one that made the references) would say nothing about them."""
    import datetime as dt

    return {"gpu": gpu, "tensorrt": next((s["tensorrt"] for s in summary if s.get("tensorrt")), None),
            "torch": None, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": command, "rows": rows, "summary": summary}
