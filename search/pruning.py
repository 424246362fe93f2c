"""Multi-fidelity: a trial's partial objective while its worker measures, and when to stop it.

The partial objective reported at step k is the cumulative penalised latency (the sum of
latency_ms x penalty of scoring.objective) of the first k+1 cases in the worker's
`case_order`: one fixed order for every trial of a grid (most work first), so step k of two
trials covers the same cases and their values compare like with like; at the last step it is
the trial's objective. (The other choice, an estimate of the full objective scaled by a
reference trial's per-shape shares, needs a reference that every trial agrees on; the sum
needs nothing.)

Optuna's MedianPruner/PercentilePruner do not fit a growing sum: they compare the *best* value
a trial reported over all its steps (for a sum, its first) with the other trials' values at the
current step, so after step 0 they would never prune. `StepPercentilePruner` compares the value
at the current step. Rules, the first that fires stops the trial:
  1. infeasible by a wide margin: a measured case's worst metric is above `prune_bad_ratio` x its
     threshold (checked on the worker's progress lines, `ProgressWatch`; no startup trials needed);
  2. already worse than the best: the partial sum exceeds the best feasible complete trial's
     objective (every term is positive, so it cannot end better);
  3. median / percentile: once `prune_startup_trials` trials are complete, the partial sum is above
     the median (or `prune_percentile`) of the complete trials' sums at the same step.
`--pruner none` turns all three off (the values are still reported: the dashboard plots them).
Seeds and planned trials (user attr seed / plan) are never stopped: they are the measurements the
precision strategies read (a sensitivity sweep needs the all-FP16 trial's errors in full, a rules
plan its latency at every shape); on the decoder study the pruner had stopped 8 of 12 rules plans,
6 of them after their first case.
Steps compare only within one grid: a study resumed with another `--grid` would compare unlike
cases (keep a study's grid; a new grid is a new study name).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from search.grid import parse_grid, shape_label
from search.options import TrialOptions
from search.storage import is_feasible
from search.worker import case_order


class StepPercentilePruner(optuna.pruners.BasePruner):
    """Rules 2 and 3 above, on intermediate values that are growing sums over a fixed case order."""

    def __init__(self, percentile: float = 50.0, n_startup_trials: int = 5, n_min_trials: int = 1) -> None:
        if not 0 < percentile < 100:
            raise ValueError(f"percentile {percentile} is not between 0 and 100")
        self.percentile = percentile
        self.n_startup_trials = n_startup_trials
        self.n_min_trials = max(1, n_min_trials)
        self.last_reason: str | None = None

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        self.last_reason = self.reason(study, trial)
        return self.last_reason is not None

    def reason(self, study: optuna.Study, trial: FrozenTrial) -> str | None:
        step = trial.last_step
        if step is None:
            return None
        value = trial.intermediate_values[step]
        if math.isnan(value):
            return f"partial objective is not a number at step {step}"
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        feasible = [t.value for t in complete if is_feasible(t)]
        if feasible and value > min(feasible):
            return (f"already worse than the best: {value:.3f} ms after {step + 1} case(s) > best feasible "
                    f"objective {min(feasible):.3f} ms")
        if len(complete) < self.n_startup_trials:
            return None
        others = [t.intermediate_values[step] for t in complete if step in t.intermediate_values]
        if len(others) < self.n_min_trials:
            return None
        threshold = float(np.percentile(np.asarray(others, dtype=float), self.percentile))
        if value > threshold:
            what = "median" if self.percentile == 50 else f"{self.percentile:g}th percentile"
            return (f"{value:.3f} ms after {step + 1} case(s) > the {what} {threshold:.3f} ms of "
                    f"{len(others)} complete trial(s) at that step")
        return None


def make_pruner(opts: TrialOptions) -> optuna.pruners.BasePruner:
    """The run's pruner from its TrialOptions (--pruner none|median|percentile)."""
    if opts.pruner == "none":
        return optuna.pruners.NopPruner()
    percentile = 50.0 if opts.pruner == "median" else opts.prune_percentile
    return StepPercentilePruner(percentile, n_startup_trials=opts.prune_startup_trials)


def measured_in_full(trial: optuna.trial.Trial) -> bool:
    """A seed or a planned trial: every case is measured, whatever the pruner says."""
    attrs = getattr(trial, "user_attrs", None) or {}
    return "seed" in attrs or "plan" in attrs


def _finite(x: Any) -> float:
    return math.inf if x is None else float(x)


class ProgressWatch:
    """Follows one trial's progress.jsonl: reports each new step to Optuna and says when to stop.

    Called by the runner (search/runner.py `watch`) while the worker runs; returns a reason to
    stop it, or None. `finish(result)` reports the steps a fast worker measured between polls.
    """

    def __init__(self, trial: optuna.trial.Trial, progress: Path, opts: TrialOptions) -> None:
        self.trial = trial
        self.path = Path(progress)
        self.opts = opts
        self.order = case_order(parse_grid(opts.grid))
        self.enabled = opts.pruner != "none" and not measured_in_full(trial)
        self.offset = 0
        self.records: list[dict[str, Any]] = []
        self.total = 0.0
        self.reported: set[int] = set()
        self.note: str | None = None          # why reporting stopped early (an unexpected case order)
        self.reason: str | None = None
        self.step: int | None = None          # the step at which it was pruned

    # --- reading -----------------------------------------------------------------------------
    def read_new(self) -> list[dict[str, Any]]:
        """The complete lines appended since the last call (a line still being written waits)."""
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        out = []
        for line in chunk[:end].splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def _accept(self, rec: dict[str, Any]) -> bool:
        """Add one measured case at the next step; False when it is not the case that step should be."""
        step = len(self.records)
        if self.note is not None:
            return False
        if step >= len(self.order) or (int(rec.get("batch", -1)), int(rec.get("length", -1))) != self.order[step]:
            self.note = (f"progress step {step} is {rec.get('batch')}x{rec.get('length')}, not the case order's "
                         f"{shape_label(self.order[step]) if step < len(self.order) else 'end'}: reporting stopped")
            return False
        self.records.append(rec)
        self.total += float(rec["latency_ms"]) * _finite(rec.get("penalty"))
        if step not in self.reported:
            self.trial.report(self.total, step)
            self.reported.add(step)
        return True

    # --- deciding ----------------------------------------------------------------------------
    def _bad_reason(self, rec: dict[str, Any]) -> str | None:
        ratio = self.opts.prune_bad_ratio
        if not ratio or rec.get("good"):
            return None
        worst = _finite(rec.get("worst_ratio"))
        if worst > ratio:
            what = "a non-finite error" if math.isinf(worst) else f"worst error {worst:.3g}x its threshold"
            return f"case {rec['batch']}x{rec['length']} is Bad by a wide margin: {what} (> {ratio:g}x)"
        return None

    def __call__(self) -> str | None:
        new = [r for r in self.read_new() if self._accept(r)]
        if not new or not self.enabled or (self.path.parent / "result.json").exists():
            return None
        for rec in new:
            reason = self._bad_reason(rec)
            if reason:
                return self._stop(reason)
        if self.trial.should_prune():
            pruner = self.trial.study.pruner
            return self._stop(getattr(pruner, "last_reason", None) or f"pruned by {type(pruner).__name__}")
        return None

    def _stop(self, reason: str) -> str:
        self.reason, self.step = reason, len(self.records) - 1
        return reason

    def finish(self, result: dict[str, Any]) -> None:
        """Report every step of a finished trial that no poll saw (from its result's cases)."""
        for rec in self.read_new():
            self._accept(rec)
        by_shape = {(int(c["batch"]), int(c["length"])): c for c in result.get("cases") or []}
        for shape in self.order[len(self.records):]:
            case = by_shape.get(shape)
            if case is None or not self._accept({**case, "batch": shape[0], "length": shape[1]}):
                break

    def partial_attrs(self) -> dict[str, Any]:
        """user_attrs of a pruned trial: what was measured before it was stopped."""
        worst = [_finite(r.get("worst_ratio")) for r in self.records]
        attrs: dict[str, Any] = {
            "prune_reason": self.reason, "prune_step": self.step, "cases_measured": len(self.records),
            "partial_objective": self.total if math.isfinite(self.total) else None,
            "latency_ms": {f"{r['batch']}x{r['length']}": r["latency_ms"] for r in self.records},
            "bad_cases": [f"{r['batch']}x{r['length']}" for r in self.records if not r.get("good")],
        }
        if worst:      # the constraint of the cases measured (for TPE; a PRUNED trial is never feasible)
            c = 1e9 if math.isinf(max(worst)) else max(worst) - 1.0
            attrs["constraint"] = max(c, 1e-9) if attrs["bad_cases"] else c
        if self.note:
            attrs["progress_note"] = self.note
        return attrs
