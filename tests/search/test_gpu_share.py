"""search.gpu_share: builds share the GPU, a measurement has it alone, and a waiting measurement goes
before builds that ask after it. Threads stand in for worker processes (flock locks belong to the open
file, so two opens in one process exclude each other as two processes do)."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from search.gpu_share import WAIT_STAGE, gpu_lock_path, gpu_turn

fcntl = pytest.importorskip("fcntl")
REPO = Path(__file__).resolve().parents[2]


class Taker(threading.Thread):
    """Takes the lock, logs 'got NAME', holds it until `release` is set, logs 'left NAME'."""

    def __init__(self, lock: Path, name: str, exclusive: bool, log: list[str]) -> None:
        super().__init__(daemon=True)
        self.lock, self.label, self.exclusive, self.log = lock, name, exclusive, log
        self.asked, self.got, self.release = threading.Event(), threading.Event(), threading.Event()

    def run(self) -> None:
        with gpu_turn(self.lock, self.exclusive, waiting=self.asked.set):
            self.log.append(f"got {self.label}")
            self.got.set()
            self.release.wait(30)
            self.log.append(f"left {self.label}")


def start(t: Taker) -> Taker:
    t.start()
    assert t.asked.wait(10)
    return t


def test_builds_overlap(tmp_path):
    log: list[str] = []
    a, b = Taker(tmp_path / "g.lock", "a", False, log), Taker(tmp_path / "g.lock", "b", False, log)
    start(a), start(b)
    assert a.got.wait(10) and b.got.wait(10)            # both hold it at once
    a.release.set(), b.release.set()
    a.join(10), b.join(10)


def test_a_measurement_waits_for_the_builds_and_goes_before_a_later_build(tmp_path):
    lock, log = tmp_path / "g.lock", []
    build1 = start(Taker(lock, "build1", False, log))
    assert build1.got.wait(10)
    measure = start(Taker(lock, "measure", True, log))
    assert not measure.got.wait(0.3)                     # a build holds the GPU
    build2 = start(Taker(lock, "build2", False, log))
    assert not build2.got.wait(0.3)                      # queued behind the waiting measurement
    build1.release.set()
    assert measure.got.wait(10)
    assert not build2.got.is_set()                       # the measurement has the GPU alone
    measure.release.set()
    assert build2.got.wait(10)
    build2.release.set()
    for t in (build1, measure, build2):
        t.join(10)
    assert log == ["got build1", "left build1", "got measure", "left measure", "got build2", "left build2"]


def test_no_lock_runs_the_block_and_the_path_names_host_and_gpu(tmp_path):
    ran = []
    with gpu_turn(None, True):
        ran.append(1)
    assert ran == [1]
    path = gpu_lock_path(tmp_path, "3")
    assert path.parent == tmp_path / "locks" and path.name.endswith("-gpu3.lock")
    assert WAIT_STAGE == "wait-gpu"


def test_a_failing_block_frees_the_lock(tmp_path):
    lock = tmp_path / "g.lock"
    with pytest.raises(RuntimeError):
        with gpu_turn(lock, True):
            raise RuntimeError("measurement failed")
    log: list[str] = []
    t = start(Taker(lock, "next", True, log))
    assert t.got.wait(10)
    t.release.set()
    t.join(10)


def _run_holder(tmp_path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search.gpu_share", "--work-dir", str(tmp_path), "--", *command],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


def test_the_command_line_holder_runs_its_command_as_a_build(tmp_path):
    """host.sh's background plugin GPU tests run under it: a trial's measurement must not start meanwhile."""
    marker, started, go = tmp_path / "ran", tmp_path / "started", tmp_path / "go"
    results: list[subprocess.CompletedProcess] = []
    lock = gpu_lock_path(tmp_path, "0")
    # the command says it started (the holder took the lock before it ran it), then waits for the test's go
    script = (f"import pathlib, time\npathlib.Path({str(started)!r}).write_text('')\n"
              f"while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.05)\n"
              f"pathlib.Path({str(marker)!r}).write_text('x')")
    holder = threading.Thread(target=lambda: results.append(_run_holder(tmp_path, sys.executable, "-c", script)),
                              daemon=True)
    holder.start()
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists()
    measure = start(Taker(lock, "measure", True, []))
    assert not measure.got.wait(0.5)                     # blocked while the command runs
    go.write_text("")
    assert measure.got.wait(20) and marker.exists()      # the command finished first
    measure.release.set()
    measure.join(10), holder.join(20)
    assert results[0].returncode == 0


def test_the_command_line_holder_passes_the_exit_status_and_rejects_bad_input(tmp_path):
    assert _run_holder(tmp_path, sys.executable, "-c", "raise SystemExit(3)").returncode == 3
    none = subprocess.run([sys.executable, "-m", "search.gpu_share", "--work-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert none.returncode == 2 and none.stderr.strip() == "error: no command to run (give it after --)"
    missing = _run_holder(tmp_path, str(tmp_path / "no-such-program"))
    assert missing.returncode == 2 and missing.stderr.startswith("error: cannot run ")
    assert len(missing.stderr.strip().splitlines()) == 1
