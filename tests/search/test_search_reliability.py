"""A killed tuner loses nothing; tuners started together on one fresh storage neither crash nor
run a seed twice. Real signals to real `python -m search tune` processes, with the fake worker."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna
import pytest

from search import storage as storage_mod
from search import stale as stale_mod
from search.cli import main
from search.runner import REPO_ROOT
from search.stale import requeue_interrupted
from search.storage import open_study
from stand_ins import write_stand_ins

FAKE_WORKER = Path(__file__).with_name("fake_trial_worker.py")
CONTEST_SEEDS = ("baseline", "reference", "all_fp16", "passes_fp32", "mixed", "fds_off",   # seed_study's order
                 "fds_off_tf32")
S = optuna.trial.TrialState


def fake(mode: str = "ok") -> str:
    return shlex.join([sys.executable, str(FAKE_WORKER), "--fake-mode", mode])


def make_work(root: Path) -> Path:
    """A work directory as conftest's `work` makes it (the fake worker reads none of its files)."""
    return write_stand_ins(root, ("encoder",))


@pytest.fixture
def fast_work():
    """conftest's `work`, on a RAM disk where there is one: SQLite commits there cost 0.2 ms, not 20."""
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="search-reliability-", dir=base))
    try:
        yield make_work(root / "work")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def short_heartbeat(monkeypatch):
    """Heartbeat every second, stale after two (the defaults are 30 s and 120 s)."""
    monkeypatch.setattr(storage_mod, "HEARTBEAT_INTERVAL_S", 1)
    monkeypatch.setattr(storage_mod, "GRACE_PERIOD_S", 2)


def url_of(work: Path) -> str:
    return f"sqlite:///{work / 'study.db'}"


def start_hanging_tuner(work: Path) -> tuple[subprocess.Popen, Path]:
    """`python -m search tune` whose first trial's worker hangs (with a child); returns once it runs."""
    cmd = [sys.executable, "-m", "search", "tune", "--work-dir", str(work), "--model", "encoder", "--trials", "2",
           "--harness", "contest", "--no-progress", "--trial-timeout", "120", "--worker-command", fake("hang")]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid_file = work / "trials" / "wenet-encoder-contest" / "00000" / "hang.pid"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if pid_file.is_file() and len(pid_file.read_text().split()) == 2:
            return proc, pid_file
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"the worker never started: {proc.communicate()}")


def wait_dead(pids: list[int], alive, within_s: float) -> list[int]:
    """The pids still alive after within_s seconds (polled)."""
    deadline = time.monotonic() + within_s
    while True:
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def test_sigterm_is_handled_like_ctrl_c(fast_work, process_alive):
    """What timeout, docker stop and batch schedulers send: the trial fails with its reason, the
    worker's group is killed, one line and exit 130; the interrupted seed is enqueued again once."""
    proc, pid_file = start_hanging_tuner(fast_work)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err.splitlines()[-1] and "Traceback" not in err, err
    assert not [p for p in map(int, pid_file.read_text().split()) if process_alive(p)]

    study = open_study(url_of(fast_work), "encoder", "contest")
    trials = study.get_trials()
    assert [t.state for t in trials] == [S.FAIL] + [S.WAITING] * (len(CONTEST_SEEDS) - 1)
    assert trials[0].user_attrs["interrupted"] == "SIGTERM"
    assert trials[0].user_attrs["fail_reason"] == "interrupted: the tuner got SIGTERM"
    assert requeue_interrupted(study) == ["baseline"]
    assert requeue_interrupted(study) == []                   # once, however often the study resumes
    again = study.get_trials()[-1]
    assert again.state == S.WAITING and again.user_attrs == {"seed": "baseline", "retry_of": 0, "attempt": 2}


def test_kill_9_takes_the_worker_along_status_shows_stale_and_resume_requeues(fast_work, process_alive,
                                                                             short_heartbeat, capsys):
    proc, pid_file = start_hanging_tuner(fast_work)
    pids = [int(p) for p in pid_file.read_text().split()]       # the worker and its child
    proc.kill()
    proc.wait(timeout=30)
    assert wait_dead(pids, process_alive, within_s=10) == [], "the worker outlived its tuner"

    db = fast_work / "study.db"
    study = open_study(url_of(fast_work), "encoder", "contest", create=False)
    assert study.trials[0].state == S.RUNNING                    # nobody has noticed yet
    before = db.read_bytes()
    deadline = time.monotonic() + 15
    while True:                                                  # stale once no heartbeat for 2 s
        assert main(["status", "--work-dir", str(fast_work)]) == 0
        err = capsys.readouterr().err
        if "stale" in err or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "wenet-encoder-contest: running 1 (1 stale, no heartbeat for" in err, err
    assert db.read_bytes() == before                             # status only looked
    assert study.trials[0].state == S.RUNNING

    # The next tune marks it FAIL with its reason and enqueues the seed again.
    assert main(["tune", "--work-dir", str(fast_work), "--model", "encoder", "--harness", "contest", "--trials", "1",
                 "--grid", "1x16", "--no-progress", "--worker-command", fake("ok")]) == 0
    trials = study.get_trials()
    assert trials[0].state == S.FAIL and trials[0].user_attrs["interrupted"] == "stale"
    assert trials[0].user_attrs["fail_reason"].startswith("stale: no heartbeat for")
    assert [t.state for t in trials] == [S.FAIL, S.COMPLETE] + [S.WAITING] * (len(CONTEST_SEEDS) - 2 + 1)   # + retry
    assert [t.user_attrs.get("seed") for t in trials] == [*CONTEST_SEEDS, "baseline"]
    assert trials[-1].user_attrs["retry_of"] == 0
    assert "1 new trials (1 complete" in capsys.readouterr().out


def test_a_stale_trial_fails_within_a_grace_period_while_a_long_trial_runs(fast_work, short_heartbeat):
    """A tuner killed just before another starts: its trial is not stale yet at the start, and
    must not wait for the (long) running trial to end to be failed and enqueued again."""
    common = ["tune", "--work-dir", str(fast_work), "--model", "encoder", "--harness", "contest", "--trials", "1",
              "--grid", "1x16", "--no-progress"]
    assert main([*common, "--worker-command", fake("ok")]) == 0              # seeds; trial 0 runs
    study = open_study(url_of(fast_work), "encoder", "contest")
    with warnings.catch_warnings():                 # "heartbeat is supposed to be used with optimize": yes
        warnings.simplefilter("ignore", UserWarning)
        lost = study.ask()                                                    # trial 1 (reference) RUNNING...
    study._storage.record_heartbeat(lost._trial_id)                           # ...by a tuner that dies now
    # Trial 2 hangs until its timeout; meanwhile trial 1's heartbeat goes stale.
    assert main([*common, "--trial-timeout", "4", "--worker-command", fake("hang")]) == 1
    trials = study.get_trials()
    assert trials[1].state == S.FAIL and trials[1].user_attrs["fail_reason"].startswith("stale: no heartbeat")
    assert trials[2].state == S.FAIL and "timeout" in trials[2].user_attrs["fail_reason"]
    assert trials[-1].state == S.WAITING and trials[-1].user_attrs["seed"] == "reference"
    assert trials[-1].user_attrs["retry_of"] == 1


def test_an_interrupted_seed_is_retried_at_most_max_attempts_times():
    study = optuna.create_study()
    study.enqueue_trial({"x": 1.0}, user_attrs={"seed": "s"})
    for attempt in range(1, stale_mod.MAX_ATTEMPTS + 1):
        trial = study.ask()
        trial.suggest_float("x", 0, 2)
        trial.set_user_attr("interrupted", "SIGINT")
        study.tell(trial, state=S.FAIL)
        assert trial.user_attrs.get("attempt", 1) == attempt
        assert requeue_interrupted(study) == ([] if attempt == stale_mod.MAX_ATTEMPTS else ["s"])
    study.enqueue_trial({"x": 1.0}, user_attrs={"plan": "p"})
    trial = study.ask()
    trial.suggest_float("x", 0, 2)
    trial.set_user_attr("fail_reason", "error: build: fake")           # failed on its own: not retried
    study.tell(trial, state=S.FAIL)
    assert requeue_interrupted(study) == []


# Forked from one process that imported search.cli once, so the tuners of a round start within
# milliseconds of each other (the worst case for races) and ten rounds stay cheap.
LAUNCHER = r"""
import json, os, sys
sys.path[:0] = [os.getcwd(), os.path.join(os.getcwd(), "tests", "search")]
from search.cli import main
from stand_ins import write_stand_ins
base, n, rounds, worker = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
storage = sys.argv[5] if len(sys.argv) > 5 else None      # a URL with {round}; default WORK/study.db

def tune(work, i, r=None):
    where = ["--storage", storage.format(round=r)] if storage and r is not None else []
    return main(["tune", "--work-dir", work, "--model", "encoder", "--harness", "contest", "--trials", "1",
                 "--grid", "1x16", "--no-progress", "--seed", str(i), "--worker-command", worker, *where])

def make_work(work):
    write_stand_ins(__import__("pathlib").Path(work), ("encoder",))

# One tune here first, so the tuners below start with everything imported (as a long-running
# host would): what is left is the storage work that races.
make_work(os.path.join(base, "warm-up"))
with open(os.devnull, "w") as null:
    stdout, stderr, sys.stdout, sys.stderr = sys.stdout, sys.stderr, null, null
    assert tune(os.path.join(base, "warm-up"), 0) == 0
    sys.stdout, sys.stderr = stdout, stderr
report = []
for r in range(rounds):
    work = os.path.join(base, f"round{r}")
    make_work(work)
    go_r, go_w = os.pipe()
    pids = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            os.read(go_r, 1)
            out = os.open(os.path.join(work, f"tuner{i}.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(out, 1)
            os.dup2(out, 2)
            try:
                code = tune(work, i, r)
            except BaseException:
                import traceback
                traceback.print_exc()
                code = 99
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        pids.append(pid)
    os.close(go_r)
    os.write(go_w, b"x" * n)
    os.close(go_w)
    report.append([os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids])
print(json.dumps(report))
"""


# The storage is what is under test here: a worker that only writes its result (the fake worker's
# imports would triple the CPU time of forty tuners on two cores).
RESULT_ONLY_WORKER = r"""
import json, os, sys
out = os.path.dirname(sys.argv[sys.argv.index("--request") + 1])
with open(os.path.join(out, "result.json"), "w") as f:
    json.dump({"objective": 1.0, "constraint": -0.5, "build_s": 0.0, "eval_s": 0.0, "cases": []}, f)
"""


def run_rounds(base: Path, n: int, rounds: int, storage: str | None = None) -> list[list[int]]:
    """n tuners started together, `rounds` times, each round on a fresh storage: the exit codes.

    storage: a URL with {round} (default: each round's own work/study.db)."""
    worker = shlex.join([sys.executable, "-S", "-c", RESULT_ONLY_WORKER])
    out = subprocess.run([sys.executable, "-c", LAUNCHER, str(base), str(n), str(rounds), worker,
                          *([storage] if storage else [])],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def check_round(work: Path, n: int, codes: list[int], url: str | None = None) -> None:
    logs = {i: (work / f"tuner{i}.log").read_text() for i in range(n)}
    assert codes == [0] * n, logs
    for i, text in logs.items():
        assert "Traceback" not in text and "error:" not in text, text
        # each process counts only its own trial, whatever the others ran meanwhile
        assert "wenet-encoder-contest (contest harness): 1 new trials (1 complete, 0 failed" in text, text
    study = open_study(url or url_of(work), "encoder", "contest", create=False)
    trials = study.get_trials()
    assert sorted(t.user_attrs["seed"] for t in trials) == sorted(CONTEST_SEEDS)   # each seed enqueued once
    done = [t for t in trials if t.state == S.COMPLETE]
    assert len(done) == n and len({t.user_attrs["tuner_run"] for t in done}) == n   # one trial per tuner
    assert [t.state for t in trials].count(S.WAITING) == len(CONTEST_SEEDS) - n


def test_four_tuners_on_a_fresh_sqlite_file_ten_rounds(fast_work):
    """Four `tune` processes started together on a new study.db: no crash ("table ... already
    exists", "UNIQUE constraint failed: alembic_version"), no seed enqueued or run twice."""
    base = fast_work.parent / "rounds"
    base.mkdir()
    n, rounds = 4, 10
    for r, codes in enumerate(run_rounds(base, n, rounds)):
        check_round(base / f"round{r}", n, codes)


def test_a_stale_trial_has_no_duration_in_the_export():
    # its timestamps span the time until a later tuner failed it (H200 decoder trial 35: two hours)
    import datetime as dt

    from search.results import trial_record
    start = dt.datetime(2026, 12, 3, 14, 0)
    stale = optuna.trial.create_trial(state=S.FAIL, user_attrs={"interrupted": "stale", "fail_reason": "stale: x"})
    stale.datetime_start, stale.datetime_complete = start, start + dt.timedelta(hours=2)
    failed = optuna.trial.create_trial(state=S.FAIL, user_attrs={"fail_reason": "error: build: x"})
    failed.datetime_start, failed.datetime_complete = start, start + dt.timedelta(seconds=20)
    assert trial_record(stale)["duration_s"] is None
    assert trial_record(failed)["duration_s"] == 20.0
