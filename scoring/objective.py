"""The tuning objective: contest-style latency with an error penalty.

The organisers' exact formula is not public. The contest scored a submission
inversely to its end-to-end inference time when every error was within its
threshold and penalised it when not. We define (README "Scoring"):

    objective = sum over test cases of latency_ms * penalty
    penalty   = 1                         if the case is Good
              = 2 * max(1, worst_ratio)   otherwise

where worst_ratio is the largest metric / threshold of the case. With every case
Good the objective is the total latency; a Bad case costs at least twice its
latency and more the further it misses. Lower is better.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from scoring.metrics import CaseErrors

BAD_FACTOR = 2.0


@dataclass
class CaseResult:
    batch: int
    length: int
    latency_ms: float
    errors: CaseErrors
    run: dict[str, Any] = field(default_factory=dict)   # how it ran: profile, cuda_graph, host_ms, ...

    @property
    def penalty(self) -> float:
        if self.errors.good:
            return 1.0
        worst = self.errors.worst_ratio
        if not math.isfinite(worst):
            return math.inf
        return BAD_FACTOR * max(1.0, worst)


def objective(cases: Sequence[CaseResult]) -> float:
    """Penalised total latency in ms (lower is better); inf for a non-finite error."""
    if not cases:
        raise ValueError("no test cases to score")
    return float(sum(c.latency_ms * c.penalty for c in cases))


def constraint(cases: Iterable[CaseResult]) -> float:
    """Optuna constraint value: feasible (every case Good) iff <= 0.

    Worst metric/threshold ratio over every case, minus one. Non-finite errors map
    to a large finite number so Optuna can still store it.
    """
    cases = list(cases)
    worst = max(c.errors.worst_ratio for c in cases)
    if not math.isfinite(worst):
        return 1e9
    if all(c.errors.good for c in cases):
        return float(worst - 1.0)
    # A ratio of exactly 1 is Bad (the contest's limits are strict): keep it infeasible.
    return max(float(worst - 1.0), 1e-9)


def contest_score(cases: Sequence[CaseResult]) -> float:
    """Score in the contest's spirit, higher is better: 1000 / objective."""
    obj = objective(cases)
    return 0.0 if not math.isfinite(obj) or obj <= 0 else 1000.0 / obj
