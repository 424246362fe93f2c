"""The guard every trial worker and per-GPU loop runs under: it dies with the tuner that started it.

`guarded(cmd)` is `cmd` wrapped in `python -c GUARD PARENT_PID GRACE COMMAND...`; start it as
the leader of a new process group (the runner does, for each trial worker; tune, for each GPU's
loop).
"""
from __future__ import annotations

import os
import sys

# The guard: `python -c GUARD PARENT_PID COMMAND...`, started as the leader of a new process
# group (the runner starts each trial worker so; `_run_children` each GPU's loop). It runs COMMAND
# in that group and, when its parent is no longer PARENT_PID (the tuner died, even by SIGKILL),
# sends the group SIGTERM, then SIGKILL after ORPHAN_GRACE_S: the worker and whatever it started
# go too. It ignores the signals sent to the group (COMMAND gets them with their default
# handling) and ends as COMMAND ended, so timeouts, Ctrl-C and the runner's crash reasons are the
# same as without it.
ORPHAN_GRACE_S = 5
GUARD = r"""
import os, signal, subprocess, sys
parent, grace = int(sys.argv[1]), float(sys.argv[2])
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
for s in SIGNALS:
    signal.signal(s, signal.SIG_IGN)
def restore():
    for s in SIGNALS:
        signal.signal(s, signal.SIG_DFL)
def orphaned():
    os.killpg(0, signal.SIGTERM)
    try:
        child.wait(timeout=grace)
    except (NameError, subprocess.TimeoutExpired):
        pass
    os.killpg(0, signal.SIGKILL)
if os.getppid() != parent:
    orphaned()
child = subprocess.Popen(sys.argv[3:], preexec_fn=restore)
while True:
    try:
        rc = child.wait(timeout=0.5)
        break
    except subprocess.TimeoutExpired:
        if os.getppid() != parent:
            orphaned()
if rc < 0:
    signal.signal(-rc, signal.SIG_DFL)
    os.kill(os.getpid(), -rc)
    rc = 128 - rc
sys.exit(rc)
"""


def guarded(cmd: list[str]) -> list[str]:
    """`cmd` under GUARD, tied to this process: it dies with us (start it in a new process group)."""
    return [sys.executable, "-c", GUARD, str(os.getpid()), str(ORPHAN_GRACE_S), *cmd]
