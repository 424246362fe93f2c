"""search.gpu_share: builds share the GPU, a measurement has it alone, and a waiting measurement goes
before builds that ask after it. Threads stand in for worker processes (flock locks belong to the open
file, so two opens in one process exclude each other as two processes do)."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from search.gpu_share import WAIT_STAGE, gpu_lock_path, gpu_turn

fcntl = pytest.importorskip("fcntl")


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
