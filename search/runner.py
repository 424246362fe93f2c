"""Runs one trial in its own process: a crashing or hanging TensorRT build costs
one trial, never the study.

The worker (`python -m search.worker`, found through PYTHONPATH; it keeps our working
directory, so relative paths mean the same) sees one GPU (CUDA_VISIBLE_DEVICES),
writes stdout/stderr to files in the trial directory, and is killed with its
whole process group when it runs past the trial timeout (TrialOptions.trial_timeout_s); time it
spends waiting for a GPU it shares with other trials (search/gpu_share.py) does not count.
Its only input is request.json in the trial directory (search/request.py). Tests swap
the command for tests/search/fake_trial_worker.py through `command=`.

While the worker runs, `watch` (if given) is called every `poll_s` seconds; when it returns a
reason (the objective's pruner read the worker's progress.jsonl and wants the trial stopped),
the worker's process group is killed and the outcome is "pruned" with that reason.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from search.gpu_share import WAIT_STAGE
from search.request import TrialRequest, read_stage, stage_seconds, write_request

REPO_ROOT = Path(__file__).resolve().parents[1]
KILL_GRACE_S = 10            # SIGTERM first (TensorRT can flush its log), then SIGKILL
POLL_S = 0.5                 # how often `watch` looks at a running worker
REASON_MAX_CHARS = 500


def worker_args(req: TrialRequest) -> list[str]:
    """The worker's arguments (shared by the real and the fake worker): its request file."""
    return ["--request", str(req.path)]


def worker_command(req: TrialRequest) -> list[str]:
    return [sys.executable, "-m", "search.worker", *worker_args(req)]


CommandBuilder = Callable[[TrialRequest], Sequence[str]]
Watch = Callable[[], "str | None"]     # a reason to stop the running worker, or None to let it run


@dataclass
class TrialOutcome:
    status: str                               # "ok" | "failed" | "timeout" | "pruned"
    reason: str = ""                          # one line for failed/timeout/pruned
    result: dict[str, Any] | None = None      # the worker's result.json when ok
    returncode: int | None = None
    wall_s: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)   # stdout/stderr logs

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:REASON_MAX_CHARS] if lines else ""


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the worker's process group, then SIGKILL what is left."""
    for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def _signal_reason(rc: int) -> str:
    sig = -rc if rc < 0 else rc - 128
    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if sig == signal.SIGKILL else ""
    return f"worker killed by {name}{hint}"


def _wait(proc: subprocess.Popen, timeout_s: float | None, watch: Watch | None, poll_s: float,
          waited: Callable[[], float] = lambda: 0.0) -> int | str:
    """The worker's exit status, or the reason `watch` gave to stop it; TimeoutExpired once the worker has
    run timeout_s seconds besides the `waited()` seconds it spent waiting (for the GPU it shares), which
    is read only when a deadline comes."""
    start = time.monotonic()
    deadline = None if timeout_s is None else start + timeout_s
    while True:
        step = poll_s if watch is not None else None
        if deadline is not None:
            left = max(deadline - time.monotonic(), 0.0)
            step = left if step is None else min(step, left)
        try:
            return proc.wait(timeout=step)
        except subprocess.TimeoutExpired:
            if deadline is not None and time.monotonic() >= deadline:
                deadline = start + timeout_s + waited()
                if time.monotonic() >= deadline:
                    raise
        reason = watch() if watch is not None else None
        if reason:
            finished = proc.poll()          # it ended meanwhile: its own outcome stands
            return finished if finished is not None else str(reason)


def run_trial(req: TrialRequest, gpu: str | None = None, command: CommandBuilder = worker_command,
              watch: Watch | None = None, poll_s: float = POLL_S) -> TrialOutcome:
    """Write the request, run the worker for one trial and classify how it ended.

    watch: called every poll_s seconds while the worker runs; a reason it returns stops the worker
    (its whole process group) and the outcome is "pruned" with that reason.
    """
    req.out.mkdir(parents=True, exist_ok=True)
    write_request(req)
    timeout_s = req.trial.trial_timeout_s
    stdout_path, stderr_path = req.out / "worker.stdout.txt", req.out / "worker.stderr.txt"
    files = {"stdout": stdout_path, "stderr": stderr_path}
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    cmd = [str(c) for c in command(req)]

    start = time.monotonic()
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        # Own session: the timeout kills the worker and anything it started, and a Ctrl-C
        # meant for the tuner reaches the worker only through us.
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        try:
            rc = _wait(proc, timeout_s, watch, poll_s,
                       waited=lambda: stage_seconds(req.out).get(WAIT_STAGE, 0.0))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return TrialOutcome("timeout", f"trial ran past its timeout of {timeout_s:g} s; worker killed",
                                returncode=proc.returncode, wall_s=time.monotonic() - start, files=files)
        except BaseException:       # KeyboardInterrupt, a failing watch: leave no worker behind
            _kill_group(proc)
            raise
        if isinstance(rc, str):     # the watch stopped it
            _kill_group(proc)
            return TrialOutcome("pruned", rc[:REASON_MAX_CHARS], returncode=proc.returncode,
                                wall_s=time.monotonic() - start, files=files)
    wall = time.monotonic() - start

    if rc != 0:
        if rc < 0 or rc in (128 + signal.SIGKILL, 128 + signal.SIGTERM):
            # the last stderr line of a crash is whatever was printed before it (a warning, say),
            # not its cause: name the stage, and label the line as what it is
            reason = _signal_reason(rc)
            stage = read_stage(req.out)
            reason = f"{reason} in its {stage} stage" if stage else reason
            detail = _last_line(stderr_path)
            reason = f"{reason} (last stderr line: {detail})" if detail else reason
        else:
            reason = _last_line(stderr_path) or f"worker exited with status {rc} and no message"
        return TrialOutcome("failed", reason, returncode=rc, wall_s=wall, files=files)

    result_path = req.out / "result.json"
    try:
        result = json.loads(result_path.read_text())
    except (OSError, ValueError) as exc:
        return TrialOutcome("failed", f"worker exited 0 but {result_path.name} is missing or invalid ({exc})",
                            returncode=rc, wall_s=wall, files=files)
    if not isinstance(result, dict) or "objective" not in result or "constraint" not in result:
        return TrialOutcome("failed", f"{result_path.name} lacks objective/constraint",
                            returncode=rc, wall_s=wall, files=files)
    return TrialOutcome("ok", result=result, returncode=rc, wall_s=wall, files=files)
