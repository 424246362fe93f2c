"""Cold vs warm timing cache per layout (issue 10): every engine built twice, each time in a fresh process,
first with an empty timing cache, then with the cache the first build wrote: OUT/cache-builds-<gpu>.json.

    python3.10 bench/cache_builds.py --work WORK --out OUT_DIR --gpu "NVIDIA H200"
        [--models encoder,decoder] [--only "naive fp32,per_batch fp32"] [--plugin-lib L] [--deadline-s 540]

The configs are bench/layouts.py's (suite `layouts` by default), so a row names the same engine as
layouts-<gpu>.json. Builds run one at a time: parallel builds would share the CPU cores and the GPU's
tactic timing, and the times would measure the neighbours. The prepared ONNX is cached after the cold
build, so the warm build's time is the builder's alone; both rows carry the builder's own `build_s`
(engine build --report) and the wall time of the process. A failed build or one the deadline skipped is
a row with its reason: failures are data, and the file is rewritten after every build.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, base_record, ensure_repo_on_path, gpu_slug, write_json  # noqa: E402

ensure_repo_on_path()

from bench.layouts import engine_build_args, make_jobs  # noqa: E402
from bench.suites import SUITES  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/cache_builds.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="work", help="work folder with onnx/ (default work)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for cache-builds-<gpu>.json")
    p.add_argument("--gpu", default="unknown", help="GPU name for the file name and header")
    p.add_argument("--models", default="encoder,decoder")
    p.add_argument("--suite", default="layouts", choices=tuple(SUITES), help="bench/layouts.py's suite of configs")
    p.add_argument("--only", help="comma list of variant labels (default: every variant of the suite)")
    p.add_argument("--opt-level", type=int, default=3, help="builder optimization level of every engine")
    p.add_argument("--plugin-lib", action="append", default=[], help="plugin library for every build")
    p.add_argument("--deadline-s", type=float, default=540.0, help="no build starts after this (default 540)")
    p.add_argument("--build-timeout-s", type=float, default=900.0, help="a build running longer is killed")
    p.add_argument("--build-command", default=None,
                   help="command line standing in for `python -m engine build` (tests)")
    return p.parse_args(argv)


def build_cmd(args, job, tag: str, cache: Path) -> list[str]:
    base = shlex.split(args.build_command) if args.build_command else [sys.executable, "-m", "engine", "build"]
    stem = job.plan.with_name(f"{job.plan.stem}.{tag}")
    return base + engine_build_args(job, Path(args.work), stem.with_suffix(".plan"), cache,
                                    stem.with_suffix(".build.log"), stem.with_suffix(".report.json"),
                                    args.plugin_lib) + ["--no-layer-info"]


def run_build(args, job, tag: str, cache: Path) -> dict[str, Any]:
    """One build in its own process: its builder time, wall time and the cache's size after it, or why not."""
    cmd = build_cmd(args, job, tag, cache)
    report = Path(cmd[cmd.index("--report") + 1])
    report.unlink(missing_ok=True)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.build_timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "reason": f"killed after {args.build_timeout_s:g} s"}
    wall = round(time.monotonic() - t0, 2)
    if proc.returncode != 0 or not report.is_file():
        lines = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()]
        return {"status": "failed", "wall_s": wall, "reason": (lines[-1] if lines else f"exit {proc.returncode}")[:300]}
    rep = json.loads(report.read_text())
    tc = rep.get("timing_cache") or {}
    return {"status": "built", "wall_s": wall, "build_s": rep.get("build_s"), "loaded_bytes": tc.get("loaded_bytes"),
            "cache_bytes": cache.stat().st_size if cache.is_file() else 0, "timing_cache": tc}


def row_of(job, cold: dict[str, Any], warm: dict[str, Any]) -> dict[str, Any]:
    cfg = job.variant.fields
    row = {"model": job.model, "label": job.variant.label, "layout": cfg.get("layout", "single"),
           "precision": "fp16" if cfg.get("fp16") else "fp32", "cold": cold, "warm": warm,
           "cold_build_s": cold.get("build_s"), "warm_build_s": warm.get("build_s")}
    if row["cold_build_s"] and row["warm_build_s"] is not None:
        row["warm_over_cold"] = round(row["warm_build_s"] / row["cold_build_s"], 3)
    return row


def _bad_selection(args, models: list[str]) -> str | None:
    """Why --models / --only select nothing they name (a misspelt label would silently build nothing)."""
    variants = SUITES[args.suite][0]
    known = sorted({m for v in variants for m in v.models})
    unknown = [m for m in models if m not in known]
    if unknown or not models:
        return f"--models {args.models!r}: expected some of {', '.join(known)}"
    labels = [v.label for v in variants]
    wanted = [s.strip() for s in args.only.split(",")] if args.only else []
    missing = [w for w in wanted if w not in labels]
    if missing:
        return f"--only {', '.join(missing)}: not a variant of suite {args.suite} ({', '.join(labels)})"
    return None


def _seconds(build: dict) -> str:
    """A build's time for the log line, or its status where it did not build."""
    t = build.get("build_s")
    return f"{t:.1f} s" if isinstance(t, (int, float)) else str(build["status"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    problem = _bad_selection(args, models)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    jobs = make_jobs(args, models, work)
    out = Path(args.out) / f"cache-builds-{gpu_slug(args.gpu)}.json"
    record = {**base_record(args.gpu), "kind": "cache-builds", "suite": args.suite, "rows": []}
    t0 = time.monotonic()
    for job in jobs:
        if time.monotonic() - t0 > args.deadline_s:
            skipped = {"status": "skipped", "reason": f"deadline {args.deadline_s:g} s"}
            record["rows"].append(row_of(job, skipped, skipped))
            continue
        cache = job.plan.with_name(f"{job.plan.stem}.timing.cache")
        cache.unlink(missing_ok=True)                     # cold: the builder starts an empty cache
        cold = run_build(args, job, "cold", cache)
        warm = (run_build(args, job, "warm", cache) if cold["status"] == "built"
                else {"status": "skipped", "reason": "the cold build did not finish"})
        row = row_of(job, cold, warm)
        record["rows"].append(row)
        print(f"{job.model:8} {job.variant.label:32} cold {_seconds(cold)}, warm {_seconds(warm)}, "
              f"cache {warm.get('cache_bytes', '-')} B", flush=True)
        write_json(out, record)
    write_json(out, record)
    print(f"{len(record['rows'])} rows -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
