"""A study brought back from its committed export (`search export`), so tuning resumes, not restarts.

Device hosts are handed back bare and an ignored study.db does not outlive the session; the
export under bench/results/ does. `search import FILE` re-creates every finished trial in an
empty study (params, value, constraint, user attrs, intermediate values), so TPE conditions on
them, the seeds are not run again, and WAITING (planned, never run) trials are enqueued again.

Exports written before they carried distributions get them from the search space: the
trial's params are replayed through `SearchSpace.sample` on an Optuna FixedTrial.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

import optuna
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.trial import FixedTrial, TrialState, create_trial

from search.errors import SearchError, SpaceError
from search.space import SearchSpace

IMPORTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# study user attrs that describe how the study was tuned (copied when the export has them)
STUDY_ATTRS = ("model", "harness", "sampler", "seeded", "plans")


@dataclass
class ImportSummary:
    study: str
    added: int
    requeued: int
    skipped: int


def _number(x: Any) -> float | None:
    """Export numbers back to floats ("inf"/"nan" strings are how export writes non-finite ones)."""
    if x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        raise SearchError(f"export holds a non-number {x!r} where a number belongs") from None


def distributions_for(record: Mapping[str, Any], space: SearchSpace,
                      strict: bool = True) -> dict[str, BaseDistribution]:
    """The trial's distributions: stored in the record, or replayed through the space.

    strict=False for a planned (WAITING) trial: Optuna ignores enqueued params the space never
    suggests (plans pin int8 off even in a space without INT8), and a dimension the plan was queued
    without takes its default (what `tune` pins it to), so only a value outside the space is an error."""
    stored = record.get("distributions")
    if stored:
        return {name: json_to_distribution(text) for name, text in stored.items()}
    params = record.get("params") or {}
    try:
        pinned = {} if strict else space.unpinned(params)
    except SpaceError as exc:
        raise SearchError(f"trial {record.get('number')}: {exc}") from None
    fixed = FixedTrial({**params, **pinned})
    try:
        space.sample(fixed)
    except (ValueError, KeyError) as exc:
        raise SearchError(f"trial {record.get('number')}: its params do not fit this search space ({exc}); "
                          "pass the space flags the study was tuned with") from None
    dists = {name: d for name, d in fixed.distributions.items() if name not in pinned}
    extra = sorted(set(params) - set(dists))
    if extra and strict:
        raise SearchError(f"trial {record.get('number')}: params {', '.join(extra)} are not in this search space")
    return dists


def _when(text: Any) -> datetime | None:
    """An export timestamp (isoformat) back to a datetime; None where the export has none."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        raise SearchError(f"export holds a timestamp {text!r} that is not ISO 8601") from None


def frozen_trial(record: Mapping[str, Any], space: SearchSpace) -> optuna.trial.FrozenTrial:
    state = TrialState[record["state"]]
    value = _number(record.get("value"))
    if value is not None and not math.isfinite(value):
        value = None if state != TrialState.COMPLETE else value
    # a pruned trial keeps its last intermediate value, as Optuna's tell stores it (exports made by
    # an import that dropped it still hold the intermediate values it came from)
    kept = value if state in (TrialState.COMPLETE, TrialState.PRUNED) else None
    user_attrs = dict(record.get("user_attrs") or {})
    user_attrs.setdefault("imported_from_trial", record.get("number"))
    constraint = _number(record.get("constraint"))
    # constrained TPE reads the constraint from this system attr (Optuna writes it on tell)
    system_attrs = {"constraints": [constraint]} if constraint is not None and state != TrialState.FAIL else {}
    intermediate = {int(k): float(v) for k, v in (record.get("intermediate_values") or {}).items()}
    if state == TrialState.PRUNED and kept is None and intermediate:
        kept = intermediate[max(intermediate)]
    trial = create_trial(state=state, value=kept,
                         params=dict(record.get("params") or {}), distributions=distributions_for(record, space),
                         user_attrs=user_attrs, system_attrs=system_attrs, intermediate_values=intermediate)
    # the trial's own timestamps, not the import's: its place in the study's history (and the
    # duration of a trial that has no duration_s attr) survive the round trip
    start, complete = _when(record.get("datetime_start")), _when(record.get("datetime_complete"))
    if start is not None and complete is not None and start <= complete:
        trial.datetime_start, trial.datetime_complete = start, complete
    return trial


@dataclass
class PreparedImport:
    """One exported study, checked against the space: nothing has been written yet."""
    trials: list[optuna.trial.FrozenTrial]
    waiting: list[Mapping[str, Any]]
    skipped: int


def full_distributions(rec: Mapping[str, Any], table: Mapping[str, str]) -> Mapping[str, Any]:
    """The record with every distribution of its params: newer exports keep the shared ones in one study
    table (results.share_distributions) and only a trial's own in the record."""
    if not rec.get("distributions_shared"):
        return rec
    missing = sorted(set(rec.get("params") or {}) - set(table) - set(rec.get("distributions") or {}))
    if missing:
        raise SearchError(f"trial {rec.get('number')}: the export's distribution table lacks {', '.join(missing)}")
    own = rec.get("distributions") or {}
    return {**rec, "distributions": {name: own.get(name, table.get(name)) for name in rec.get("params") or {}}}


def prepare_import(exported: Mapping[str, Any], space: SearchSpace) -> PreparedImport:
    records = exported.get("trials")
    if not isinstance(records, list):
        raise SearchError(f"export of {exported.get('study')!r} has no trial list")
    table = exported.get("distributions") or {}
    trials, waiting, skipped = [], [], 0
    for rec in sorted((full_distributions(r, table) for r in records), key=lambda r: r.get("number", 0)):
        state = rec.get("state")
        if state in (s.name for s in IMPORTED):
            trials.append(frozen_trial(rec, space))
        elif state == "WAITING" and rec.get("params"):
            distributions_for(rec, space, strict=False)     # a planned trial must fit the space too
            waiting.append(rec)
        else:   # RUNNING when exported (runs again as new), or WAITING from an export without its params
            skipped += 1
    return PreparedImport(trials, waiting, skipped)


def import_study(exported: Mapping[str, Any], prepared: PreparedImport, study: optuna.Study) -> ImportSummary:
    """Add the prepared trials of one exported study to `study`, which must have no trials yet."""
    if study.get_trials(deepcopy=False):
        raise SearchError(f"study {study.study_name} already has trials; import into an empty study "
                          "(a new --storage or --study-name)")
    study.add_trials(prepared.trials)
    for rec in prepared.waiting:
        attrs = {k: v for k, v in (rec.get("user_attrs") or {}).items() if k in ("seed", "plan")}
        study.enqueue_trial(dict(rec["params"]), user_attrs=attrs)
    attrs = dict(exported.get("user_attrs") or {})
    if "seeded" not in attrs:                       # seeds of an old export: their trials' labels
        attrs["seeded"] = [t.user_attrs["seed"] for t in prepared.trials if "seed" in t.user_attrs]
    attrs.setdefault("sampler", "tpe")
    attrs["imported"] = {"trials": len(prepared.trials), "requeued": len(prepared.waiting)}
    for key in (*STUDY_ATTRS, "imported"):
        if key in attrs and key not in ("model", "harness"):    # open_study set those, checked
            study.set_user_attr(key, attrs[key])
    return ImportSummary(study.study_name, len(prepared.trials), len(prepared.waiting), prepared.skipped)


def studies_in(data: Any, wanted: Callable[[Mapping[str, Any]], bool]) -> list[Mapping[str, Any]]:
    """The exported studies that `wanted` keeps; a SearchError for a file that is not an export."""
    if not isinstance(data, dict) or not isinstance(data.get("studies"), list):
        raise SearchError("not a `search export` file (no 'studies' list)")
    chosen = [s for s in data["studies"] if isinstance(s, dict) and wanted(s)]
    if not chosen:
        raise SearchError("the export holds no study of the requested model and harness")
    return chosen
