"""One process at a time for what must happen once on a storage (creating Optuna's schema,
creating and seeding a study, re-enqueueing interrupted trials).

`storage_lock(url)`: a file lock beside a SQLite file (`study.db.lock`), an advisory lock on
PostgreSQL and MySQL; re-entrant within a process, released when the holder exits (kill -9 too).
"""
from __future__ import annotations

import contextlib
import threading
import zlib
from pathlib import Path
from typing import Callable, Iterator

import optuna

from search.errors import StorageError

LOCK_KEY = zlib.crc32(b"wenet-trt-autotune setup")   # the advisory lock of server databases


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages and provenance."""
    try:
        import sqlalchemy
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def rdb_of(study: optuna.Study) -> optuna.storages.RDBStorage | None:
    """The study's RDBStorage (Optuna wraps it in a _CachedStorage), or None."""
    storage = study._storage
    storage = getattr(storage, "_backend", storage)
    return storage if isinstance(storage, optuna.storages.RDBStorage) else None


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



def study_lock(study: optuna.Study):
    """`storage_lock` of the study's storage (a no-op for a storage that is not an RDBStorage)."""
    storage = rdb_of(study)
    return storage_lock(storage.url) if storage is not None else contextlib.nullcontext()
