"""Fake trial worker: stands in for the engine build + evaluation (search.worker) in CPU tests.

Takes the real worker's argument (`--request request.json`, read with the real worker's
search.request.read_request) plus `--fake-mode`:
  ok          writes result.json (objective from the config, every case Good; the harness and
              the trial options as received), build.log, layers.json, eval.txt (evaluate.py's
              case_row/format_table), and appends to the timing cache
  infeasible  like ok, but one case is Bad (constraint > 0)
  crash       exits 1 with `error: build: ...` on stderr, as the real worker does
  segfault    enters the build stage (search.request.write_stage), prints a pass warning, then dies
              by SIGSEGV (a crashing TensorRT)
  oom         dies by SIGKILL, as the kernel's OOM killer does
  hang        sleeps forever with a child process (a stuck build): the runner must kill both
  noresult    exits 0 without writing result.json
  progress    like ok, and writes progress.jsonl (the real worker's lines, in its case order) first
  slow        an engine 10x slower than ok's: progress lines every --fake-delay s, then it lingers
              --fake-linger s before writing its result (a pruner should have stopped it by then);
              writes worker.pid
  bad         like slow at ok's speed, but the first case measured is Bad by 10x its threshold
  wait        like ok, but first sits in the GPU-wait stage (search.gpu_share.WAIT_STAGE) for
              --fake-linger s: the runner must not count that against the trial timeout

Like the real worker, it builds under the GPU lock shared (FAKE_BUILD_S in the environment: seconds a
build takes, default 0) and measures under it exclusively, and logs each turn as `<kind> <pid> <start>
<end>` (wall clock) to intervals.txt beside the lock file, so a test can see that no measurement
overlapped another trial's build or measurement.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.config import BuildConfig  # noqa: E402
from engine.evaluation import case_row, format_table  # noqa: E402
from scoring.metrics import CaseErrors  # noqa: E402
from scoring.objective import CaseResult, constraint, objective  # noqa: E402
from search.grid import parse_grid  # noqa: E402
from search.options import to_dict  # noqa: E402
from search.gpu_share import WAIT_STAGE, gpu_turn  # noqa: E402
from search.request import read_request  # noqa: E402
from search.request import write_stage  # noqa: E402
from search.worker import PROGRESS_FILE, case_order, progress_record  # noqa: E402

SLOW_FACTOR = 10.0


def fake_latency(config: BuildConfig, harness: str, batch: int, length: int) -> float:
    """Deterministic in the config, so tests can predict which trial is best."""
    speed = 1.0 - 0.4 * config.fp16 - 0.05 * config.opt_level - 0.02 * len(config.passes)
    if harness == "serving" and config.layout != "single":
        speed -= 0.3                        # a profile per batch: the serving harness's gain
    return round(max(speed, 0.1) * (0.2 + batch * length / 4096), 6)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--request", required=True)
    p.add_argument("--fake-mode", default="ok")
    p.add_argument("--fake-delay", type=float, default=0.3, help="slow/bad: seconds between progress lines")
    p.add_argument("--fake-linger", type=float, default=30.0, help="slow/bad: seconds before the result")
    args = p.parse_args()
    req = read_request(args.request)
    out = Path(req.out)
    mode = args.fake_mode

    print(f"fake worker pid {os.getpid()} mode {mode}", flush=True)
    if mode in ("slow", "bad"):
        (out / "worker.pid").write_text(str(os.getpid()))
    if mode == "crash":
        print("Traceback (most recent call last):\n  ...", file=sys.stderr)
        print("error: build: RuntimeError: fake builder failure", file=sys.stderr)
        return 1
    if mode == "segfault":
        write_stage(out, "build")
        print("warning: pass bool_slice found no site to rewrite", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == "oom":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "hang":
        # a child too, as a build helper would be: the runner must kill the whole group
        child = subprocess.Popen(["sleep", "3600"])
        (out / "hang.pid").write_text(f"{os.getpid()} {child.pid}")
        while True:
            time.sleep(1)
    if mode == "noresult":
        return 0
    if mode == "wait":
        write_stage(out, WAIT_STAGE)
        time.sleep(args.fake_linger)

    # the real worker's stages, in its order (search.worker.run)
    write_stage(out, "config")
    config = BuildConfig.load(req.config)
    harness = req.trial.harness
    write_stage(out, "prepare")
    write_stage(out, "build")
    with gpu_turn(req.gpu_lock, exclusive=False), logged_turn(req.gpu_lock, "build"):
        time.sleep(float(os.environ.get("FAKE_BUILD_S", "0")))
    (out / "build.log").write_text(f"fake build of {config.model}\n")
    (out / "layers.json").write_text(json.dumps([{"name": "fake/MatMul", "precision": "fp16" if config.fp16 else "fp32"}]))
    cache = Path(req.timing_cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("a") as f:
        f.write(f"{out.name}\n")

    write_stage(out, "evaluate")
    with gpu_turn(req.gpu_lock, exclusive=True), logged_turn(req.gpu_lock, "measure"):
        time.sleep(float(os.environ.get("FAKE_BUILD_S", "0")) / 4)
    grid = parse_grid(req.trial.grid, config.model)
    order = case_order(grid) if mode in ("progress", "slow", "bad") else list(grid)
    cases = []
    for i, (b, t) in enumerate(order):
        r0 = 1e-4                                          # encoder r0 limit is 2e-3
        if (mode == "infeasible" and (b, t) == grid[0]) or (mode == "bad" and i == 0):
            r0 = 5e-3 if mode == "infeasible" else 2e-2     # 2.5x / 10x the limit
        run = {"harness": harness, "profile": 0 if config.layout == "single" or harness == "contest" else 1,
               "cuda_graph": harness == "serving", "graph_note": None, "host_ms": 0.01, "shapes": {}}
        latency = fake_latency(config, harness, b, t) * (SLOW_FACTOR if mode == "slow" else 1.0)
        cases.append(CaseResult(b, t, latency, CaseErrors(1e-3, r0, 0.0, 0.0, config.model), run=run))
    if mode in ("progress", "slow", "bad"):
        write_progress(out, cases, args.fake_delay if mode != "progress" else 0.0)
    if mode in ("slow", "bad"):
        deadline = time.monotonic() + args.fake_linger
        while time.monotonic() < deadline:
            time.sleep(0.2)
    position = {bt: i for i, bt in enumerate(grid)}
    cases.sort(key=lambda c: position[(c.batch, c.length)])       # result rows in grid order
    rows = [case_row(c) for c in cases]
    result = {"version": 1, "model": config.model, "harness": harness, "trial_options": to_dict(req.trial),
              "config": config.to_dict(), "objective": objective(cases),
              "constraint": constraint(cases), "feasible": constraint(cases) <= 0, "cases": rows,
              "prepare_s": 0.01, "build_s": 0.1, "eval_s": 0.2,
              "precision_counts": {"fp16": 10 if config.fp16 else 0, "fp32": 5},
              "sites": {p: 1 for p in config.passes}, "warnings": [],
              "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    (out / "eval.txt").write_text(format_table(rows) + "\n")
    (out / "result.json").write_text(json.dumps(result))
    return 0


@contextlib.contextmanager
def logged_turn(lock: Path | None, kind: str):
    start = time.time()
    yield
    if lock is not None:
        with (lock.parent / "intervals.txt").open("a") as f:
            f.write(f"{kind} {os.getpid()} {start:.6f} {time.time():.6f}\n")


def write_progress(out: Path, cases: list[CaseResult], delay_s: float) -> None:
    """progress.jsonl as the real worker writes it: one line per case, as it is "measured"."""
    total = 0.0
    path = out / PROGRESS_FILE
    path.write_text("")
    for step, case in enumerate(cases):
        if delay_s:
            time.sleep(delay_s)
        total += case.latency_ms * case.penalty
        with path.open("a") as f:
            f.write(json.dumps(progress_record(step, case, total, 0.0)) + "\n")


if __name__ == "__main__":
    sys.exit(main())
