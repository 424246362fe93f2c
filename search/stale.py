"""Trials whose tuner is gone: heartbeats, stale RUNNING trials, and interrupted seeds run again.

A killed tuner (kill -9, a lost host) leaves its trial RUNNING. Every trial has a heartbeat
(HEARTBEAT_INTERVAL_S); a RUNNING trial without one for GRACE_PERIOD_S is stale: the next
tuning process on the storage (at start, before each trial and every heartbeat interval while
tuning) gives it user attr fail_reason and makes it FAIL (`fail_stale`), and a seed or planned
trial that was interrupted so (or by Ctrl-C / SIGTERM) is enqueued again (`requeue_interrupted`).
Readers only look: `stale_trials` reads the heartbeats.
"""
from __future__ import annotations

import logging
import threading
import warnings
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.locking import _first_line, rdb_of, study_lock

log = logging.getLogger("search")

HEARTBEAT_INTERVAL_S = 30         # read when a storage is made (tests shorten them)
GRACE_PERIOD_S = 120               # a RUNNING trial without a heartbeat this long is stale
MAX_ATTEMPTS = 3                   # an interrupted seed or planned trial runs at most this often


class TunerStorage(optuna.storages.RDBStorage):
    """RDBStorage whose stale trials get user attr fail_reason before they become FAIL.

    Optuna's fail_stale_trials (called by study.optimize before every trial, and by `fail_stale`)
    asks for the stale trials, then fails them: the reason is written while they are still
    RUNNING (a FAIL trial takes no attribute). Staleness is Optuna's rule: a heartbeat older
    than the grace period.
    """

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        grace = self.grace_period if self.grace_period is not None else 2 * (self.heartbeat_interval or 0)
        stale = []
        for trial_id, _number, age in _running_heartbeats(self, study_id):
            if age is None or age <= grace:
                continue
            try:
                self.set_trial_user_attr(trial_id, "fail_reason",
                                         f"stale: no heartbeat for {age:.0f} s (its tuner was killed or lost "
                                         "the storage)")
                self.set_trial_user_attr(trial_id, "interrupted", "stale")
            except optuna.exceptions.UpdateFinishedTrialError:
                continue                    # another process failed it first
            except Exception as exc:        # e.g. a concurrent insert of the same attribute
                log.debug("stale trial %d: %s", trial_id, exc)
            stale.append(trial_id)
        return stale


def _running_heartbeats(storage: optuna.storages.RDBStorage, study_id: int) -> list[tuple[int, int, float | None]]:
    """(trial_id, number, seconds since its last heartbeat or None) of each RUNNING trial. Reads only."""
    import sqlalchemy
    from sqlalchemy import orm
    from optuna.storages._rdb import models

    with orm.Session(storage.engine) as session:
        now = session.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        rows = session.execute(
            sqlalchemy.select(models.TrialModel.trial_id, models.TrialModel.number,
                              models.TrialHeartbeatModel.heartbeat)
            .outerjoin(models.TrialHeartbeatModel,
                       models.TrialHeartbeatModel.trial_id == models.TrialModel.trial_id)
            .where(models.TrialModel.study_id == study_id, models.TrialModel.state == TrialState.RUNNING)
            .order_by(models.TrialModel.number)).all()
        session.rollback()
    now = now.replace(tzinfo=None) if now is not None else None
    out = []
    for trial_id, number, beat in rows:
        age = None if beat is None or now is None else (now - beat.replace(tzinfo=None)).total_seconds()
        out.append((trial_id, number, age))
    return out


def stale_trials(study: optuna.Study, grace_s: float | None = None) -> list[tuple[int, float]]:
    """(number, seconds without heartbeat) of the study's RUNNING trials whose tuner is gone.

    Read-only (status shows them; the next `tune` fails them). grace_s: default the storage's
    grace period, else GRACE_PERIOD_S.
    """
    storage = rdb_of(study)
    if storage is None:
        return []
    grace = grace_s if grace_s is not None else (storage.grace_period or GRACE_PERIOD_S)
    study_id = storage.get_study_id_from_name(study.study_name)
    return [(n, age) for _, n, age in _running_heartbeats(storage, study_id) if age is not None and age > grace]


def describe_stale(study: optuna.Study) -> str | None:
    """One line on the study's stale RUNNING trials, None when it has none."""
    stale = stale_trials(study)
    if not stale:
        return None
    running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    numbers = ", ".join(str(n) for n, _ in stale)
    return (f"{study.study_name}: running {running} ({len(stale)} stale, no heartbeat for "
            f"{max(age for _, age in stale):.0f} s: trial {numbers}, its tuner is gone; the next `tune` "
            "fails it and runs an interrupted seed or plan again)")


def fail_stale(study: optuna.Study) -> None:
    """RUNNING trials whose tuner is gone (no heartbeat for the grace period) become FAIL with a
    fail_reason; the interrupted seeds and plans among them are enqueued again (the storage's
    stale-trial callback). Any number of processes may call it at once: each trial fails once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


class StaleWatch:
    """While tuning: `fail_stale` every heartbeat interval in a thread, so a stale trial becomes
    FAIL (and its seed runs again) within about one grace period even while a long trial runs."""

    def __init__(self, study: optuna.Study, interval_s: float | None = None) -> None:
        storage = rdb_of(study)
        beat = storage.heartbeat_interval if storage is not None else None
        self.study = study
        self.interval_s = interval_s if interval_s is not None else beat
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "StaleWatch":
        if self.interval_s:
            self._thread = threading.Thread(target=self._run, name="stale-watch", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                fail_stale(self.study)
            except Exception as exc:        # a busy database: the next round or trial tries again
                log.debug("stale-trial check failed: %s", exc)


def was_interrupted(t: FrozenTrial) -> bool:
    """A FAIL trial that did not fail on its own: Ctrl-C / SIGTERM of its tuner, or stale (user
    attr "interrupted"); a FAIL without fail_reason (Optuna's own stale check, older runs) too."""
    return t.state == TrialState.FAIL and bool(t.user_attrs.get("interrupted") or "fail_reason" not in t.user_attrs)


def requeue_interrupted(study: optuna.Study) -> list[str]:
    """Enqueue again, once, every interrupted seed or planned trial (user attr seed / plan).

    The copy has the same parameters and label and user attr retry_of (the interrupted trial's
    number); an interrupted trial that already has a copy is skipped, so calling this at every
    start, in every process, enqueues each at most once. After MAX_ATTEMPTS interrupted attempts a
    config is left alone (it may be what kills the tuner). Returns the labels enqueued.
    """
    added = []
    with study_lock(study):
        trials = study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get("retry_of") for t in trials}
        for t in trials:
            kind = next((k for k in ("seed", "plan") if k in t.user_attrs), None)
            if kind is None or t.number in retried or not was_interrupted(t):
                continue
            attempt = int(t.user_attrs.get("attempt", 1))
            if attempt >= MAX_ATTEMPTS:
                log.warning("%s %s: interrupted %d times, not enqueued again", kind, t.user_attrs[kind], attempt)
                continue
            params = t.system_attrs.get("fixed_params") or t.params
            study.enqueue_trial(params, user_attrs={kind: t.user_attrs[kind], "retry_of": t.number,
                                                    "attempt": attempt + 1})
            added.append(t.user_attrs[kind])
    return added


def requeue_after_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    """The storage's stale-trial callback (fail_stale_trials calls it once per trial it failed)."""
    try:
        requeue_interrupted(study)
    except Exception as exc:                # never let a callback end the optimize loop
        log.warning("trial %d: interrupted trials not enqueued again: %s", trial.number, _first_line(exc))
