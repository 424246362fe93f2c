"""Tuners on a real PostgreSQL server: four `python -m search tune` processes started together on
one study of a fresh database lose nothing and run nothing twice.

The fixture starts a private cluster (Debian's `postgresql` package: initdb + pg_ctl, as the
`postgres` user when run as root) in a temporary directory, listening on 127.0.0.1 only, and
stops it at teardown. The test skips, saying why, where the server cannot start or the driver
(psycopg2-binary, requirements-cpu.txt) is missing; `.ci/run` installs both.
"""
from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest

from search.runner import REPO_ROOT
from search.storage import open_study
from stand_ins import write_stand_ins

pytestmark = pytest.mark.postgres

FAKE_WORKER = Path(__file__).with_name("fake_trial_worker.py")
CONTEST_SEEDS = ("baseline", "reference", "all_fp16", "passes_fp32", "mixed", "fds_off", "fds_off_tf32")
S = optuna.trial.TrialState


def _server_bin() -> Path | None:
    """The directory of initdb and pg_ctl: Debian keeps them in /usr/lib/postgresql/<version>/bin."""
    def version(d: Path) -> int:
        return int(d.parent.name) if d.parent.name.isdigit() else 0

    for d in sorted((Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")), key=version, reverse=True):
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Cluster:
    """A throw-away PostgreSQL cluster (trust authentication, loopback only, no fsync)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="search-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:                     # the server refuses to run as root
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no postgres user to run the server as") from None
            os.chown(self.root, user.pw_uid, user.pw_gid)
            runuser = shutil.which("runuser")
            self.prefix = [runuser, "-u", "postgres", "--"] if runuser else None
            if self.prefix is None:
                raise RuntimeError("running as root without runuser to start the server as postgres")

    def _run(self, *cmd: str, timeout: float = 60) -> None:
        out = subprocess.run([*self.prefix, *cmd], capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL, cwd=self.root)
        if out.returncode != 0:
            log = self.log.read_text()[-600:] if self.log.is_file() else ""
            raise RuntimeError(f"{Path(cmd[0]).name} failed: {(out.stderr or out.stdout).strip()[-600:]} {log}")

    def start(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=60"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w",
                  "-t", "60", "start", timeout=90)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").is_file():
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="module")
def postgres():
    """A running PostgreSQL server (skips with the reason where one cannot start)."""
    pytest.importorskip("psycopg2", reason="no PostgreSQL driver: pip install psycopg2-binary")
    bindir = _server_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install -y postgresql")
    cluster = _Cluster(bindir)
    try:
        cluster.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        cluster.stop()
        pytest.skip(f"the PostgreSQL server did not start: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


def create_databases(postgres: _Cluster, *names: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres.url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for name in names:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


@pytest.fixture
def fresh_database(postgres, request):
    """A new, empty database on the server; its SQLAlchemy URL."""
    name = "tune_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:40]
    create_databases(postgres, name)
    return postgres.url(name)


def test_four_tuners_on_one_postgres_study(fresh_database, tmp_path):
    """Started together on a fresh database: no crash creating the schema, each seed enqueued and
    run once, every trial stored, each tuner's summary counting its own trial."""
    n = 4
    worker = shlex.join([sys.executable, str(FAKE_WORKER), "--fake-mode", "ok"])
    procs = []
    for i in range(n):                            # as four hosts would: own work dirs, one storage
        work = tmp_path / f"host{i}"
        write_stand_ins(work, ("encoder",))
        cmd = [sys.executable, "-m", "search", "tune", "--work-dir", str(work), "--storage", fresh_database,
               "--model", "encoder", "--harness", "contest", "--trials", "1", "--grid", "1x16",
               "--seed", str(i), "--no-progress", "--worker-command", worker]
        procs.append(subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "Traceback" not in err, err
        assert "wenet-encoder-contest (contest harness): 1 new trials (1 complete, 0 failed" in out, out

    study = open_study(fresh_database, "encoder", "contest", create=False)
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(len(CONTEST_SEEDS)))   # the seeds, nothing more
    assert [t.user_attrs["seed"] for t in trials] == list(CONTEST_SEEDS)    # each enqueued once, in order
    done = [t for t in trials if t.state == S.COMPLETE]
    assert len(done) == n                                                   # nothing lost
    assert len({t.user_attrs["tuner_run"] for t in done}) == n              # one each: nothing run twice
    assert [t.state for t in trials].count(S.WAITING) == len(CONTEST_SEEDS) - n


def test_four_tuners_started_together_on_fresh_postgres_databases(postgres, tmp_path):
    """The SQLite rounds of test_search_reliability.py on PostgreSQL: tuners forked at the same
    instant, a fresh database each round (the advisory lock serializes schema and seeding)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_search_reliability import check_round, run_rounds

    n, rounds = 4, 3
    create_databases(postgres, *(f"rounds_{r}" for r in range(rounds)))
    template = postgres.url("rounds_{round}")
    for r, codes in enumerate(run_rounds(tmp_path, n, rounds, storage=template)):
        check_round(tmp_path / f"round{r}", n, codes, url=template.format(round=r))
