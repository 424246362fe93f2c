"""Planned trials: fixed config sets enqueued into a study, run by `tune` like any trial.

An ablation or a sensitivity sweep is a list of configs whose results we want side
by side. Enqueuing them (label in user attr "plan") reuses everything a sampled
trial has: isolated worker, storage, artifacts, dashboard, and the sampler learns
from them too. `tune --trials N` runs WAITING trials first.

- ablation:     for FP32 and FP16: no rewrite, each pass alone, each plugin alone,
                every pass together.
- sensitivity:  everything FP16 ("fp16/all"), then for each layer group the same
                with that one group pinned FP32 ("fp32:<group>"), as polygraphy's
                `debug precision` does one layer at a time.
`predict_mixed` reads a finished sensitivity sweep and proposes the cheapest set
of FP32 groups predicted to bring every case within its thresholds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from engine.config import BuildConfig
from search.errors import SearchError
from search.space import SearchSpace

PLANS = ("ablation", "sensitivity")


def ablation_configs(space: SearchSpace) -> list[tuple[str, BuildConfig]]:
    out: list[tuple[str, BuildConfig]] = []
    for prec in ("fp32", "fp16"):
        fp16 = prec == "fp16"
        out.append((f"ablation/{prec}/none", BuildConfig(space.model, fp16=fp16)))
        for name in space.passes:
            out.append((f"ablation/{prec}/pass:{name}", BuildConfig(space.model, passes=[name], fp16=fp16)))
        for name in space.plugins:
            if name.endswith("_fp16") and not fp16:
                continue            # FP16-I/O plugin variants need an FP16 build
            out.append((f"ablation/{prec}/plugin:{name}", BuildConfig(space.model, plugins=[name], fp16=fp16)))
        if len(space.passes) > 1:
            out.append((f"ablation/{prec}/all_passes", BuildConfig(space.model, passes=list(space.passes), fp16=fp16)))
    return out


def _pinned(space: SearchSpace, fp32: tuple[str, ...] = ()) -> BuildConfig:
    prec = {g: ("fp32" if g in fp32 else "fp16") for g in space.groups}
    return BuildConfig(space.model, fp16=True, layer_precision=prec, precision_constraints="obey")


def sensitivity_configs(space: SearchSpace) -> list[tuple[str, BuildConfig]]:
    out = [("sensitivity/fp16/all", _pinned(space))]
    out += [(f"sensitivity/fp32:{g}", _pinned(space, (g,))) for g in space.groups]
    return out


def plan_configs(space: SearchSpace, plan: str) -> list[tuple[str, BuildConfig]]:
    if plan == "ablation":
        return ablation_configs(space)
    if plan == "sensitivity":
        return sensitivity_configs(space)
    raise SearchError(f"unknown plan {plan!r}; expected one of {', '.join(PLANS)}")


def enqueue_plan(study: optuna.Study, space: SearchSpace, plan: str) -> list[str]:
    """Enqueue the plan's configs not already in the study (by label); returns the labels enqueued."""
    have = {t.user_attrs.get("plan") for t in study.get_trials(deepcopy=False)}
    added = []
    for label, cfg in plan_configs(space, plan):
        if label in have:
            continue
        study.enqueue_trial(space.to_params(cfg), user_attrs={"plan": label}, skip_if_exists=False)
        added.append(label)
    return added


# --- reading a sensitivity sweep ----------------------------------------------------------
@dataclass
class GroupEffect:
    group: str
    worst_ratio: float        # worst metric/threshold over every case with only this group in FP32
    gain: float               # all-FP16 worst ratio minus the above: error removed by this group
    latency_ms: float         # summed latency with only this group in FP32
    cost_ms: float            # latency_ms minus the all-FP16 latency


def _worst(t: FrozenTrial) -> float:
    return max(c["worst_ratio"] for c in t.user_attrs["cases"])


def _latency(t: FrozenTrial) -> float:
    return sum(c["latency_ms"] for c in t.user_attrs["cases"])


def sensitivity(study: optuna.Study) -> tuple[FrozenTrial, list[GroupEffect]]:
    """The all-FP16 trial and each group's effect, most error removed first."""
    done = {t.user_attrs.get("plan"): t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if str(t.user_attrs.get("plan", "")).startswith("sensitivity/") and t.user_attrs.get("cases")}
    base = done.get("sensitivity/fp16/all")
    if base is None:
        raise SearchError(f"study {study.study_name!r} has no finished sensitivity/fp16/all trial "
                          "(python -m search plan --plan sensitivity, then tune)")
    effects = []
    for label, t in done.items():
        if label.startswith("sensitivity/fp32:"):
            worst = _worst(t)
            effects.append(GroupEffect(label.split(":", 1)[1], worst, _worst(base) - worst, _latency(t),
                                       _latency(t) - _latency(base)))
    effects.sort(key=lambda e: (-e.gain, e.cost_ms))
    return base, effects


def predict_mixed(space: SearchSpace, base: FrozenTrial, effects: list[GroupEffect],
                  margin: float = 0.9) -> tuple[BuildConfig, float, list[str]]:
    """Cheapest FP32 set predicted feasible, assuming the groups' error reductions add up.

    Groups are taken by gain per millisecond of cost until the predicted worst ratio
    falls below `margin` (a safety factor: the additive model is optimistic when
    errors compound). Returns (config, predicted worst ratio, FP32 groups).
    """
    predicted, chosen = _worst(base), []
    helpful = [e for e in effects if e.gain > 0]
    helpful.sort(key=lambda e: -e.gain / max(e.cost_ms, 1e-3))
    for e in helpful:
        if predicted < margin:
            break
        chosen.append(e.group)
        predicted -= e.gain
    return _pinned(space, tuple(chosen)), predicted, chosen


def sensitivity_rows(base: FrozenTrial, effects: list[GroupEffect]) -> list[dict[str, Any]]:
    rows = [{"group": "(all fp16)", "worst_ratio": _worst(base), "gain": 0.0, "latency_ms": _latency(base),
             "cost_ms": 0.0}]
    rows += [e.__dict__ for e in effects]
    return rows
