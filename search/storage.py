"""Where studies live: Optuna's RDBStorage (any SQLAlchemy URL), one study per model and harness.

Every study shares one database file: `wenet-<model>-<harness>` ("wenet-encoder-serving",
"wenet-decoder-contest", ...): a harness times engines its own way, so its trials are not
comparable with another harness's. For SQLite a busy timeout lets the per-GPU processes
share the file.

Several tuning processes may open one storage at once (`--gpus 0,1`, or independent `tune`
runs on one host or several): `storage_lock` serializes what must happen once (creating
Optuna's schema, creating and seeding a study, re-enqueueing interrupted trials): a file lock
beside a SQLite file (`study.db.lock`), an advisory lock on PostgreSQL and MySQL.

A killed tuner (kill -9, a lost host) leaves its trial RUNNING. Every trial has a heartbeat
(HEARTBEAT_INTERVAL_S); a RUNNING trial without one for GRACE_PERIOD_S is stale: the next
tuning process on the storage (at start, before each trial and every heartbeat interval while
tuning) gives it user attr fail_reason and makes it FAIL (`fail_stale`), and a seed or planned
trial that was interrupted so (or by Ctrl-C / SIGTERM) is enqueued again (`requeue_interrupted`).
Readers only look: `stale_trials` reads the heartbeats, `open_study(create=False)` notes them.
"""
from __future__ import annotations

import contextlib
import logging
import math
import sys
import threading
import warnings
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from engine.harness import HARNESSES
from workload.shapes import MODELS

from search.errors import NoFeasibleTrial, SearchError, StorageError

DEFAULT_STORAGE = "sqlite:///work/study.db"
SQLITE_BUSY_TIMEOUT_S = 120        # parallel writers wait instead of failing with "database is locked"
HEARTBEAT_INTERVAL_S = 30         # read when a storage is made (tests shorten them)
GRACE_PERIOD_S = 120               # a RUNNING trial without a heartbeat this long is stale
INFEASIBLE = 1e9                   # constraint of a trial with no measurement
MAX_ATTEMPTS = 3                   # an interrupted seed or planned trial runs at most this often
LOCK_KEY = zlib.crc32(b"wenet-trt-autotune setup")   # the advisory lock of server databases
_DEFAULT: Any = object()           # "the module's value at call time"

log = logging.getLogger("search")


def default_storage_url(work_dir: str | Path = "work") -> str:
    """The study database of a work directory: sqlite:///WORK_DIR/study.db."""
    return f"sqlite:///{Path(work_dir) / 'study.db'}"


def study_name_for(model: str, harness: str, study_name: str | None = None) -> str:
    """The one rule for study names: wenet-<model>-<harness>, unless a name is given."""
    if model not in MODELS:
        raise SearchError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
    if harness not in HARNESSES:
        raise SearchError(f"unknown harness {harness!r}; expected one of {', '.join(HARNESSES)}")
    return study_name or f"wenet-{model}-{harness}"


def model_of_study(study: optuna.Study) -> str:
    model = study.user_attrs.get("model")
    if model in MODELS:
        return model
    for m in MODELS:
        if study.study_name.startswith(f"wenet-{m}-"):
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


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages and provenance."""
    try:
        import sqlalchemy
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def make_storage(url: str, heartbeat_interval: int | None = _DEFAULT, grace_period: int | None = _DEFAULT,
                 must_exist: bool = False) -> optuna.storages.RDBStorage:
    """RDBStorage for any SQLAlchemy URL; a bad URL is a StorageError with one line.

    heartbeat_interval / grace_period: default HEARTBEAT_INTERVAL_S / GRACE_PERIOD_S; None: no
    heartbeat (readers). must_exist: for readers (status, best...): a missing SQLite file is an
    error, not a new database, and nothing is written (no schema, no lock file).
    Writers create Optuna's schema under `storage_lock`, so processes started together on a
    fresh database do not race to create the same tables.
    """
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    heartbeat_interval = HEARTBEAT_INTERVAL_S if heartbeat_interval is _DEFAULT else heartbeat_interval
    grace_period = GRACE_PERIOD_S if grace_period is _DEFAULT else grace_period
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except ArgumentError:
        raise StorageError(f"storage URL {url!r} is not a SQLAlchemy URL (e.g. sqlite:///work/study.db)") from None
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
                                       grace_period=grace_period, heartbeat_stale_trial_callback=_requeue_after_stale)
        if parsed.get_backend_name() == "sqlite":
            _serialize_sqlite_transactions(storage.engine)
        return storage
    except StorageError:
        raise
    except (NoSuchModuleError, ImportError) as exc:
        raise StorageError(f"storage URL {safe_url(url)}: no database driver ({exc})") from None
    except Exception as exc:  # SQLAlchemy's OperationalError & co.: unreachable server, unwritable file
        raise StorageError(f"cannot open storage {safe_url(url)}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


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


def _rdb(study: optuna.Study) -> optuna.storages.RDBStorage | None:
    storage = study._storage                           # optuna wraps an RDBStorage in _CachedStorage
    storage = getattr(storage, "_backend", storage)
    return storage if isinstance(storage, optuna.storages.RDBStorage) else None


def stale_trials(study: optuna.Study, grace_s: float | None = None) -> list[tuple[int, float]]:
    """(number, seconds without heartbeat) of the study's RUNNING trials whose tuner is gone.

    Read-only (status shows them; the next `tune` fails them). grace_s: default the storage's
    grace period, else GRACE_PERIOD_S.
    """
    storage = _rdb(study)
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


# --- one process at a time ----------------------------------------------------------------
class _Held:
    def __init__(self) -> None:
        self.mutex = threading.RLock()
        self.depth = 0
        self.release: Callable[[], None] | None = None


_HELD: dict[str, _Held] = {}
_HELD_MUTEX = threading.Lock()


@contextlib.contextmanager
def storage_lock(url: str) -> Iterator[None]:
    """Hold the storage's setup lock: one process (and one thread) at a time, re-entrant.

    SQLite file: fcntl.flock on `<file>.lock` beside it; PostgreSQL: pg_advisory_lock; MySQL:
    GET_LOCK. Released when the holder exits, even by kill -9. Other backends: no lock.
    """
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = sqlalchemy.engine.make_url(url)
    except ArgumentError:           # make_storage says what is wrong with it
        yield
        return
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            yield
            return
        key = "file:" + str(Path(parsed.database).resolve())
    elif backend in ("postgresql", "mysql"):
        key = f"{backend}://{parsed.host}:{parsed.port}/{parsed.database}"   # one lock per database
    else:
        yield
        return
    with _HELD_MUTEX:
        held = _HELD.setdefault(key, _Held())
    with held.mutex:
        if held.depth == 0:
            try:
                held.release = (_flock(Path(parsed.database)) if backend == "sqlite"
                                else _advisory_lock(url, backend))
            except (NoSuchModuleError, ImportError) as exc:
                raise StorageError(f"storage URL {safe_url(url)}: no database driver ({exc})") from None
            except Exception as exc:
                raise StorageError(f"cannot open storage {safe_url(url)}: {_first_line(exc)}") from None
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0 and held.release is not None:
                release, held.release = held.release, None
                release()


def _flock(database: Path) -> Callable[[], None]:
    import fcntl

    path = database.with_name(database.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = open(path, "a")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        fd.close()
        raise

    def release() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            fd.close()
    return release


def _advisory_lock(url: str, backend: str) -> Callable[[], None]:
    """A session-level lock on its own connection (held across transactions, dropped with it)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        conn = engine.connect()
        if backend == "postgresql":
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        else:
            conn.execute(sqlalchemy.text("SELECT GET_LOCK(:k, -1)"), {"k": f"wenet-trt-autotune-{LOCK_KEY}"})
        conn.commit()
    except BaseException:
        engine.dispose()
        raise

    def release() -> None:
        try:
            if backend == "postgresql":
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            else:
                conn.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:k)"), {"k": f"wenet-trt-autotune-{LOCK_KEY}"})
            conn.commit()
        finally:
            conn.close()
            engine.dispose()
    return release


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
def make_sampler(seed: int | None = None,
                 constraints: Callable[[FrozenTrial], Sequence[float]] | None = constraints_func
                 ) -> optuna.samplers.BaseSampler:
    """Multivariate TPE over the conditional space; constant liar for parallel workers.

    Give every parallel process its own seed: equal seeds would sample equal trials.
    """
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
        storage = _rdb(study)
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


def study_lock(study: optuna.Study):
    """`storage_lock` of the study's storage (a no-op for a storage that is not an RDBStorage)."""
    storage = _rdb(study)
    return storage_lock(storage.url) if storage is not None else contextlib.nullcontext()


def _requeue_after_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    """The storage's stale-trial callback (fail_stale_trials calls it once per trial it failed)."""
    try:
        requeue_interrupted(study)
    except Exception as exc:                # never let a callback end the optimize loop
        log.warning("trial %d: interrupted trials not enqueued again: %s", trial.number, _first_line(exc))


def study_names(storage_url: str) -> list[str]:
    return list(optuna.study.get_all_study_names(storage=make_storage(storage_url)))
