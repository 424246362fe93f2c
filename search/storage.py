"""Where studies live: Optuna's RDBStorage (any SQLAlchemy URL), one study per model and harness.

Every study shares one database file: `<study>-<harness>`, the workload spec's study name
(`wenet-<model>-<harness>` for WeNet: "wenet-encoder-serving", "wenet-decoder-contest", ...;
`tinycnn-serving` for a spec of one's own): a harness times engines its own way, so its trials are not
comparable with another harness's. For SQLite a busy timeout lets the per-GPU processes
share the file.

Several tuning processes may open one storage at once (`--gpus 0,1`, or independent `tune`
runs on one host or several): search/locking.py serializes what must happen once. Trials whose
tuner is gone are search/stale.py's: writers fail them and re-run interrupted seeds, readers
(`open_study(create=False)`) only note them.
"""
from __future__ import annotations

import contextlib
import logging
import math
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from engine.harness import HARNESSES
from workload import registry

from search.errors import NoFeasibleTrial, SearchError, StorageError
from search.locking import _first_line, safe_url, storage_lock
from search.stale import (GRACE_PERIOD_S, HEARTBEAT_INTERVAL_S, TunerStorage, describe_stale, fail_stale,
                          requeue_after_stale)

DEFAULT_STORAGE = "sqlite:///work/study.db"
SQLITE_BUSY_TIMEOUT_S = 120        # parallel writers wait instead of failing with "database is locked"
INFEASIBLE = 1e9                   # constraint of a trial with no measurement
_DEFAULT: Any = object()           # "the module's value at call time"

log = logging.getLogger("search")


def default_storage_url(work_dir: str | Path = "work") -> str:
    """The study database of a work directory: sqlite:///WORK_DIR/study.db."""
    return f"sqlite:///{Path(work_dir) / 'study.db'}"


def study_name_for(model: str, harness: str, study_name: str | None = None) -> str:
    """The one rule for study names: <spec's study>-<harness> (wenet-<model>-<harness> for WeNet),
    unless a name is given."""
    if not registry.known(model):
        raise SearchError(f"unknown model {model!r}; expected one of {', '.join(registry.names())}")
    if harness not in HARNESSES:
        raise SearchError(f"unknown harness {harness!r}; expected one of {', '.join(HARNESSES)}")
    return study_name or registry.get(model).study_name(harness)


def model_of_study(study: optuna.Study) -> str:
    model = study.user_attrs.get("model")
    if registry.known(model):
        return model
    for m in registry.names():
        if any(study.study_name == registry.get(m).study_name(h) for h in HARNESSES):
            return m
    raise SearchError(f"study {study.study_name!r} has no model attribute; pass --model")


def harness_of_study(study: optuna.Study) -> str:
    harness = study.user_attrs.get("harness")
    if harness in HARNESSES:
        return harness
    for h in HARNESSES:
        if study.study_name.endswith(f"-{h}"):
            return h
    raise SearchError(f"study {study.study_name!r} has no harness attribute")


def parse_url(url: str):
    """The storage URL parsed (sqlalchemy.engine.URL); a StorageError when it is not one (checked before any work)."""
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError

    try:
        return sqlalchemy.engine.make_url(url)
    except ArgumentError:
        raise StorageError(f"storage URL {url!r} is not a SQLAlchemy URL (e.g. sqlite:///work/study.db)") from None


def make_storage(url: str, heartbeat_interval: int | None = _DEFAULT, grace_period: int | None = _DEFAULT,
                 must_exist: bool = False) -> optuna.storages.RDBStorage:
    """RDBStorage for any SQLAlchemy URL; a bad URL is a StorageError with one line.

    heartbeat_interval / grace_period: default HEARTBEAT_INTERVAL_S / GRACE_PERIOD_S; None: no
    heartbeat (readers). must_exist: for readers (status, best...): a missing SQLite file is an
    error, not a new database, and nothing is written (no schema, no lock file).
    Writers create Optuna's schema under `storage_lock`, so processes started together on a
    fresh database do not race to create the same tables.
    """
    from sqlalchemy.exc import NoSuchModuleError

    heartbeat_interval = HEARTBEAT_INTERVAL_S if heartbeat_interval is _DEFAULT else heartbeat_interval
    grace_period = GRACE_PERIOD_S if grace_period is _DEFAULT else grace_period
    parsed = parse_url(url)
    engine_kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
        if parsed.database and parsed.database != ":memory:":
            if must_exist and not Path(parsed.database).is_file():
                raise StorageError(f"no study database {parsed.database} (run `python -m search tune` first)")
            if not must_exist:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    if must_exist:
        _require_optuna_schema(url, parsed, engine_kwargs)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            lock = contextlib.nullcontext() if must_exist else storage_lock(url)
            with lock:
                storage = TunerStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                                       grace_period=grace_period, heartbeat_stale_trial_callback=requeue_after_stale)
        if parsed.get_backend_name() == "sqlite":
            _serialize_sqlite_transactions(storage.engine)
        return storage
    except StorageError:
        raise
    except (NoSuchModuleError, ImportError) as exc:
        raise StorageError(f"storage URL {safe_url(url)}: no database driver ({exc})") from None
    except Exception as exc:  # SQLAlchemy's OperationalError & co.: unreachable server, unwritable file
        raise StorageError(f"cannot open storage {safe_url(url)}: {_first_line(exc)}") from None


OPTUNA_TABLES = {"studies", "trials", "version_info"}


def _require_optuna_schema(url: str, parsed, engine_kwargs: dict[str, Any]) -> None:
    """Readers never write: RDBStorage would create Optuna's tables in any database it is given
    (a `status` pointed at another program's SQLite file used to do just that)."""
    import sqlalchemy
    from sqlalchemy.exc import NoSuchModuleError

    try:
        engine = sqlalchemy.create_engine(url, **engine_kwargs)
        try:
            tables = set(sqlalchemy.inspect(engine).get_table_names())
        finally:
            engine.dispose()
    except (NoSuchModuleError, ImportError) as exc:
        raise StorageError(f"storage URL {safe_url(url)}: no database driver ({exc})") from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"cannot open storage {safe_url(url)}: {first}") from None
    if not OPTUNA_TABLES <= tables:
        where = parsed.database or safe_url(url)
        raise StorageError(f"{where} is not an Optuna study database (no {', '.join(sorted(OPTUNA_TABLES - tables))} "
                           "table); run `python -m search tune` to make one")


def _serialize_sqlite_transactions(engine) -> None:
    """Every SQLite transaction takes the write lock at BEGIN (BEGIN IMMEDIATE).

    Optuna pops an enqueued trial with read-check-update under SELECT ... FOR UPDATE,
    which SQLite ignores: two tuning processes (--gpus 0,1) could both read the same
    WAITING trial and run it twice (the second `tell` then fails with "Cannot tell a
    COMPLETE trial" and kills its loop). Taking the lock at BEGIN makes the pop atomic.
    SQLAlchemy's recipe for pysqlite: disable the driver's own BEGIN, emit ours.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_driver_begin(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()        # connections made before the listeners existed are not reused


# --- constraints ------------------------------------------------------------------------
def trial_constraint(trial: FrozenTrial) -> float | None:
    """The accuracy constraint of a finished trial (feasible iff <= 0); None when unmeasured."""
    value = trial.user_attrs.get("constraint")
    if value is None:
        stored = trial.system_attrs.get("constraints")
        value = stored[0] if stored else None
    return None if value is None else float(value)


def constraints_func(trial: FrozenTrial) -> Sequence[float]:
    """For TPESampler: the worker's constraint from user_attr "constraint".

    Optuna stores it as system_attr "constraints" for COMPLETE and PRUNED trials,
    which is where optuna-dashboard shows feasibility. A trial with no
    measurement counts as infeasible.
    """
    value = trial.user_attrs.get("constraint")
    return (INFEASIBLE if value is None else float(value),)


def is_feasible(trial: FrozenTrial) -> bool:
    c = trial_constraint(trial)
    return (trial.state == TrialState.COMPLETE and c is not None and c <= 0
            and trial.value is not None and math.isfinite(trial.value))


def feasible_trials(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if is_feasible(t)]


def best_feasible_trial(study: optuna.Study) -> FrozenTrial:
    trials = feasible_trials(study)
    if not trials:
        done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        raise NoFeasibleTrial(f"study {study.study_name!r} has no feasible trial "
                              f"({done} complete, none with every test case Good)")
    return min(trials, key=lambda t: (t.value, t.number))


# --- studies ------------------------------------------------------------------------------
SAMPLERS = ("tpe", "random")


def make_sampler(seed: int | None = None,
                 constraints: Callable[[FrozenTrial], Sequence[float]] | None = constraints_func,
                 kind: str = "tpe") -> optuna.samplers.BaseSampler:
    """Multivariate TPE over the conditional space; constant liar for parallel workers.
    kind "random": Optuna's RandomSampler, the baseline TPE is compared with (its own study).

    Give every parallel process its own seed: equal seeds would sample equal trials.
    """
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind != "tpe":
        raise StorageError(f"sampler {kind!r} is not one of {', '.join(SAMPLERS)}")
    with warnings.catch_warnings():
        # multivariate/group/constant_liar are "experimental"; Optuna 5 deprecates
        # constraints_func in favour of Trial.set_constraint, which optuna-dashboard
        # (0.21) does not show yet.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True,
                                          constraints_func=constraints)


def open_study(storage_url: str = DEFAULT_STORAGE, model: str = "encoder", harness: str = "serving",
               study_name: str | None = None, seed: int | None = None, *, create: bool = True,
               sampler: optuna.samplers.BaseSampler | None = None,
               storage: optuna.storages.BaseStorage | None = None,
               heartbeat_interval: int | None = _DEFAULT, grace_period: int | None = _DEFAULT) -> optuna.Study:
    """The study of a model and harness (created on first use, continued afterwards), direction minimize.

    create=True (tune, plan): created under `storage_lock`; RUNNING trials whose tuner is gone
    become FAIL (`fail_stale`). create=False (status, best, freeze...): a StorageError when the
    study does not exist; nothing is written, stale trials are only noted on stderr.
    """
    name = study_name_for(model, harness, study_name)
    if storage is None:
        storage = make_storage(storage_url, heartbeat_interval, grace_period, must_exist=not create)
    sampler = sampler if sampler is not None else make_sampler(seed)
    if not create:
        if name not in optuna.study.get_all_study_names(storage=storage):
            raise StorageError(f"no study {name!r} in {safe_url(storage_url)}")
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    else:
        url = getattr(getattr(storage, "_backend", storage), "url", None)     # None: not a database
        with storage_lock(url) if url else contextlib.nullcontext():
            study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                        direction="minimize", load_if_exists=True)
            for key, value in (("model", model), ("harness", harness)):
                if key not in study.user_attrs:
                    study.set_user_attr(key, value)
    if study.direction != optuna.study.StudyDirection.MINIMIZE:
        raise StorageError(f"study {name!r} exists but is not a minimize study")
    stored_model = study.user_attrs.get("model")
    if stored_model is not None and stored_model != model:
        raise StorageError(f"study {name!r} holds {stored_model} trials, not {model}")
    stored_harness = study.user_attrs.get("harness")
    if stored_harness is not None and stored_harness != harness:
        raise StorageError(f"study {name!r} holds {stored_harness}-harness trials, not {harness}")
    if create:
        fail_stale(study)
    else:
        note = describe_stale(study)
        if note:
            print(f"note: {note}", file=sys.stderr)
    return study


def existing_studies(url: str, models: Sequence[str], harness: str = "all",
                     study_name: str | None = None, named: bool = False) -> list[optuna.Study]:
    """The studies a read-only verb works on (`harness` "all": every one present); nothing is written.
    named: also the studies of those models and harnesses under names of their own (`tune --study-name`,
    e.g. a random-sampler study beside the TPE one), for the verbs that list (status, export, plot).
    A StorageError when none exists (or the one named is missing); notes on stderr for the others."""
    every = harness == "all"
    harnesses = tuple(HARNESSES) if every else (harness,)
    storage = make_storage(url, heartbeat_interval=None, must_exist=True)
    names = set(optuna.study.get_all_study_names(storage=storage))
    if study_name:
        if study_name not in names:
            raise StorageError(f"no study {study_name!r} in {safe_url(url)}")
        if every:
            harness = harness_of_study(optuna.load_study(study_name=study_name, storage=storage))
        return [open_study(url, models[0], harness, study_name, create=False, storage=storage)]
    studies = []
    for model in models:
        found = 0
        for h in harnesses:
            name = study_name_for(model, h)
            if name in names:
                studies.append(open_study(url, model, h, create=False, storage=storage))
                found += 1
            elif len(models) * len(harnesses) == 1 and not named:    # named: a study of its own name may do
                raise StorageError(f"no study {name!r} in {safe_url(url)}")
            elif not every:
                print(f"note: no study {name!r} in {safe_url(url)}", file=sys.stderr)
        if not found and every and len(models) > 1:
            print(f"note: no {registry.get(model).study}-* study in {safe_url(url)}", file=sys.stderr)
    if named:
        studies += _named_studies(url, storage, models, harnesses, {s.study_name for s in studies})
    if not studies:
        raise StorageError(f"no study in {safe_url(url)} (run `python -m search tune` first)")
    return studies


def _named_studies(url: str, storage, models: Sequence[str], harnesses: Sequence[str],
                   taken: set[str]) -> list[optuna.Study]:
    """Studies under names of their own whose recorded model and harness are among those asked for."""
    out = []
    for summ in sorted(optuna.study.get_all_study_summaries(storage=storage), key=lambda x: x.study_name):
        attrs = summ.user_attrs
        if (summ.study_name not in taken and attrs.get("model") in models
                and attrs.get("harness") in harnesses):
            out.append(open_study(url, attrs["model"], attrs["harness"], summ.study_name, create=False,
                                  storage=storage))
    return out


def study_names(storage_url: str) -> list[str]:
    return list(optuna.study.get_all_study_names(storage=make_storage(storage_url)))
