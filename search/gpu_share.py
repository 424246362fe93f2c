"""Trials that share one GPU: their builds may overlap, their measurements take the GPU alone.

`tune --workers-per-gpu N` runs N tuning processes per GPU. A TensorRT build is mostly CPU work
(16 cores, the GPU mostly idle between tactic timings), so builds side by side multiply the trials an
hour buys; a latency measured while another process builds would be wrong, so measurements wait
for the GPU to be free of builds, and builds wait while a measurement runs.

The lock is a reader-writer lock of flock(2)ed files per (host, GPU) in WORK_DIR/locks: a build
holds it shared, a measurement exclusive. Every taker passes a gate file first and holds it only
while it waits for the lock itself, so a measurement that waits keeps new builds from starting
ahead of it (writer preference: a stream of builds cannot starve it). flock locks belong to the
open file, so a worker that dies, even by SIGKILL, frees what it held.

Other GPU work on the host takes the same lock from the shell, as a build does, so no trial measures
beside it (host.sh's background plugin GPU tests did not, until 2026-12-07):

    python -m search.gpu_share --work-dir /root/work [--gpu 0] -- python -m pytest -m gpu tests/plugins
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from workload.errors import OneLineParser

LOCK_DIR = "locks"
# the worker's stage while it waits for its turn (search/request.py's stage file): the runner does not
# count it against the trial's timeout, and the trial's stage times show it
WAIT_STAGE = "wait-gpu"


def gpu_lock_path(work_dir: Path, gpu: str | None) -> Path:
    """The lock file of one GPU of this host (processes of one host share it through the work dir)."""
    return Path(work_dir) / LOCK_DIR / f"{socket.gethostname()}-gpu{gpu if gpu is not None else 'default'}.lock"


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


@contextlib.contextmanager
def gpu_turn(lock: Path | None, exclusive: bool, waiting: Callable[[], None] = lambda: None) -> Iterator[float]:
    """Hold the GPU's lock for a build (shared) or a measurement (exclusive) while the block runs;
    the block gets the seconds it waited for it.

    lock None: no lock (a platform without flock, or a caller that shares nothing). `waiting` is
    called before the wait (the worker records the wait stage)."""
    if lock is None:
        yield 0.0
        return
    try:
        import fcntl
    except ImportError:             # not POSIX: no sharing to guard
        yield 0.0
        return
    waiting()
    start = time.monotonic()
    gate, held = _open(lock.with_name(lock.name + ".gate")), _open(lock)
    try:
        try:
            fcntl.flock(gate, fcntl.LOCK_EX)
            fcntl.flock(held, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            os.close(gate)          # closing releases the gate: the next taker may queue
        yield time.monotonic() - start
    finally:
        os.close(held)


def main(argv: list[str] | None = None) -> int:
    """Run a command holding the GPU's lock as a build does (shared): trials' measurements wait for it."""
    p = OneLineParser(prog="python -m search.gpu_share", description=main.__doc__)
    p.add_argument("--work-dir", required=True, type=Path, help="the tuning work dir (its locks/ folder)")
    p.add_argument("--gpu", default="0", help="the GPU id the trials use (tune --gpus; default: 0)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("error: no command to run (give it after --)", file=sys.stderr)
        return 2
    if shutil.which(command[0]) is None:        # refused before the lock file is made: bad input writes nothing
        print(f"error: cannot run {command[0]!r}: no such program", file=sys.stderr)
        return 2
    with gpu_turn(gpu_lock_path(args.work_dir, args.gpu), exclusive=False):
        try:
            return subprocess.call(command)
        except OSError as exc:          # found but not runnable (permissions, a bad interpreter line)
            print(f"error: cannot run {command[0]!r}: {exc.strerror}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
