"""Profile layouts x precision x harness, both models, one GPU: OUT/layouts-<gpu>.json.

    python3.10 bench/layouts.py --work WORK --out OUT_DIR [--models encoder,decoder] [--only LABEL,...]
        [--config LABEL=FROZEN.yaml ...]
        [--parallel 4] [--build-deadline-s 660] [--build-grace-s 120]
        [--torch-json F --torch-compiled-flag F --torch-wait-s 300] [--trt-done-flag F]

Phases, so that no timing overlaps a build or a compile:
1. padding proofs (onnxruntime, CPU) for the bucket layouts: a layout that pads frames is
   built only where padding frames provably changes no output;
2. builds, --parallel at a time, longest first, each `python -m engine build` in its own
   process (a crash or hang costs that engine only); none starts after --build-deadline-s,
   and one still running --build-grace-s later is killed (recorded as such);
3. once the builds are over and the torch process (bench/torch_baselines.py) has written
   --torch-compiled-flag, every engine alone, harness after harness (contest, serving,
   serving without CUDA graphs), every case of the judged grid (evaluate.evaluate_plan);
4. TensorRT's per-layer profile of the naive and the per_batch encoder at 1x16;
5. --trt-done-flag written (the torch process then times its variants), and its rows merged
   from --torch-json when it has finished (up to --torch-wait-s).
Rows follow shared/conventions/results.md; the file is rewritten after every case.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, base_record, ensure_repo_on_path, gpu_slug, wait_for_file, write_json  # noqa: E402

ensure_repo_on_path()

from suites import DECODER_PASSES, SUITES, Variant, config_variant, summarize  # noqa: E402


@dataclass
class Job:
    model: str
    variant: Variant
    config_path: Path
    plan: Path
    report: Path
    log: Path
    status: str = "pending"         # pending, running, built, failed, timeout, skipped
    reason: str = ""
    proc: subprocess.Popen | None = None
    started: float = 0.0
    wall_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/layouts.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="work", help="work folder with onnx/ and data/ (default work)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for layouts-<gpu>.json")
    p.add_argument("--models", default="encoder,decoder")
    p.add_argument("--only", help="comma list of variant labels to run (default all)")
    p.add_argument("--suite", default="layouts", choices=tuple(SUITES),
                   help="layouts: profile layouts x precision x harness; plugins: with and without our "
                        "plugins (writes <suite>-<gpu>.json)")
    p.add_argument("--plugin-lib", action="append", default=[],
                   help="plugin library loaded by every build and measurement (repeatable)")
    p.add_argument("--config", action="append", default=[], metavar="LABEL=PATH",
                   help="a frozen config (search freeze's YAML) built as it is and measured under every "
                        "harness beside the suite, e.g. a study's best (repeatable)")
    p.add_argument("--parallel", type=int, default=4, help="builds at a time (default 4)")
    p.add_argument("--build-deadline-s", type=float, default=660.0, help="no build starts after this (default 660)")
    p.add_argument("--build-grace-s", type=float, default=120.0, help="then running builds get this long")
    p.add_argument("--opt-level", type=int, default=3, help="builder optimization level of every engine")
    p.add_argument("--runs", type=int, default=None, help="timed runs per case (default: the harness's 30)")
    p.add_argument("--warmup", type=int, default=None, help="warm-ups per case (default: the harness's 10)")
    p.add_argument("--torch-json", help="bench/torch_baselines.py's output, merged at the end")
    p.add_argument("--torch-compiled-flag", help="wait for this file (torch compiles done) before timing")
    p.add_argument("--torch-wait-s", type=float, default=300.0, help="how long to wait for each torch file")
    p.add_argument("--trt-done-flag", help="written when the TensorRT timings are done")
    p.add_argument("--data-wait-s", type=float, default=600.0, help="how long to wait for WORK/data/.complete")
    p.add_argument("--phase", default="all", choices=("all", "build", "measure"),
                   help="build: proofs + builds; measure: the rest, from the result file and the plans a "
                        "build phase left (a fixed runtime can measure without rebuilding); all: both")
    args = p.parse_args(argv)
    try:
        args.config_variants = [config_variant(spec) for spec in args.config]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return args


# --- configs ------------------------------------------------------------------------------------
def passes_for(model: str, which: str) -> list[str]:
    import candidates
    from search.seeds import REFERENCE_REWRITES

    available = list(candidates.available_passes(model))
    if not which:
        return []
    wanted = set(REFERENCE_REWRITES) | set(DECODER_PASSES) | ({"bool_slice"} if "bool_slice" in which else set())
    return [p for p in available if p in wanted]            # registry order: the order they apply


def make_jobs(args, models: list[str], work: Path) -> list[Job]:
    from engine.config import BuildConfig

    only = {s.strip() for s in args.only.split(",")} if args.only else None
    jobs = []
    for variant in (*SUITES[args.suite][0], *getattr(args, "config_variants", ())):   # cache_builds: none
        if only and variant.label not in only:
            continue
        for model in models:
            if model not in variant.models:
                continue
            slug = variant.label.replace(" ", "_").replace("+", "-")
            if variant.config:        # a study's frozen best: as it was tuned (its own opt level too)
                cfg = BuildConfig.load(variant.config)
            else:
                cfg = BuildConfig(model=model, passes=passes_for(model, variant.passes), opt_level=args.opt_level,
                                  plugins=list(variant.plugins), **variant.fields)
            base = work / args.suite / f"{model}-{slug}"
            base.parent.mkdir(parents=True, exist_ok=True)
            cfg.save(base.with_suffix(".yaml"))
            jobs.append(Job(model, variant, base.with_suffix(".yaml"), base.with_suffix(".plan"),
                            base.with_suffix(".report.json"), base.with_suffix(".build.log")))
    # the dearest first, encoder before decoder (its builds are the slow ones)
    jobs.sort(key=lambda j: (-j.variant.cost, j.model != "encoder"))
    return jobs


# --- padding proof ------------------------------------------------------------------------------
def synthetic_feeds(model: str, batch: int = 3, frames: int = 128):
    """Valid inputs without the data files: random features, one full-length row, shorter others."""
    import numpy as np

    from workload.shapes import BEAM, D_MODEL, HYP_LEN, VOCAB_SIZE, encoder_out_len

    rng = np.random.default_rng(0)
    if model == "encoder":
        lens = np.array([frames] + [frames - 17 * (i + 1) for i in range(batch - 1)], dtype=np.int32)
        return {"speech": rng.standard_normal((batch, frames, 80)).astype(np.float32), "speech_lengths": lens}
    t = encoder_out_len(frames)
    return {"encoder_out": rng.standard_normal((batch, t, D_MODEL)).astype(np.float32),
            "encoder_out_lens": np.array([t] + [t - 5 * (i + 1) for i in range(batch - 1)], dtype=np.int32),
            "hyps_pad_sos_eos": rng.integers(0, VOCAB_SIZE, (batch, BEAM, HYP_LEN)).astype(np.int32),
            "hyps_lens_sos": rng.integers(1, HYP_LEN, (batch, BEAM)).astype(np.int32),
            "ctc_score": rng.standard_normal((batch, BEAM)).astype(np.float32)}


def padding_proofs(models: list[str], work: Path) -> dict[str, Any]:
    from workload.padding import prove_frame_padding

    out = {}
    for model in models:
        try:
            proof = prove_frame_padding(work / "onnx" / f"{model}.onnx", model, synthetic_feeds(model),
                                        pad_frames=64 if model == "encoder" else 16)
            out[model] = proof.to_dict()
        except Exception as exc:
            out[model] = {"exact": False, "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
        print(f"padding proof {model}: {out[model]}", flush=True)
    return out


# --- builds -------------------------------------------------------------------------------------
def engine_build_args(job: Job, work: Path, plan: Path, cache: Path, log: Path, report: Path,
                      plugin_libs: list[str]) -> list[str]:
    """`python -m engine build`'s arguments for a job's config (after the command itself)."""
    args = ["--config", str(job.config_path), "--onnx", str(work / "onnx" / f"{job.model}.onnx"), "--out", str(plan),
            "--timing-cache", str(cache), "--work-dir", str(work), "--log", str(log), "--no-progress",
            "--report", str(report)]
    return args + (["--plugins", *plugin_libs] if plugin_libs else [])


def start(job: Job, work: Path, plugin_libs: list[str]) -> None:
    cmd = [sys.executable, "-m", "engine", "build"] + engine_build_args(
        job, work, job.plan, work / f"timing-{job.model}.cache", job.log, job.report, plugin_libs)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    job.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=open(job.log.with_suffix(".stderr"), "wb"), start_new_session=True)
    job.status, job.started = "running", time.monotonic()
    print(f"build start {job.model} {job.variant.label}", flush=True)


def finish(job: Job) -> None:
    rc = job.proc.returncode
    job.wall_s = time.monotonic() - job.started
    if rc == 0 and job.plan.is_file():
        job.status = "built"
        job.extra = json.loads(job.report.read_text()) if job.report.is_file() else {}
    else:
        job.status = "failed"
        err = job.log.with_suffix(".stderr")
        lines = [ln for ln in err.read_text(errors="replace").splitlines() if ln.strip()] if err.is_file() else []
        job.reason = (lines[-1] if lines else f"exit status {rc}")[:400]
    print(f"build {job.status} {job.model} {job.variant.label} in {job.wall_s:.0f} s {job.reason}", flush=True)


def kill(job: Job, why: str) -> None:
    try:
        os.killpg(job.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    job.proc.wait()
    job.status, job.reason, job.wall_s = "timeout", why, time.monotonic() - job.started
    print(f"build killed {job.model} {job.variant.label}: {why}", flush=True)


def run_builds(jobs: list[Job], work: Path, args, t0: float, on_change) -> None:
    pending = [j for j in jobs if j.status == "pending"]
    while pending or any(j.status == "running" for j in jobs):
        now = time.monotonic() - t0
        for j in [j for j in jobs if j.status == "running"]:
            if j.proc.poll() is not None:
                finish(j)
                on_change()
            elif now > args.build_deadline_s + args.build_grace_s:
                kill(j, f"still building {args.build_grace_s:.0f} s after the {args.build_deadline_s:.0f} s deadline")
                on_change()
        while pending and sum(j.status == "running" for j in jobs) < args.parallel:
            if now > args.build_deadline_s:
                for j in pending:
                    j.status, j.reason = "skipped", f"not started: build deadline {args.build_deadline_s:.0f} s passed"
                pending = []
                on_change()
                break
            start(pending.pop(0), work, args.plugin_lib)
        time.sleep(2)


# --- measurement --------------------------------------------------------------------------------
def harness_of(name: str) -> tuple[str, bool | None]:
    return ("serving", False) if name == "serving-nographs" else (name, None)


def row_of(job: Job, harness: str, case) -> dict[str, Any]:
    e, run = case.errors, case.run
    cfg = job.extra.get("config", {})
    return {"model": job.model, "label": f"{job.variant.label} {harness}", "harness": harness_of(harness)[0],
            "layout": job.extra.get("layout", cfg.get("layout")), "precision": "fp16" if cfg.get("fp16") else "fp32",
            "cuda_graph": bool(run.get("cuda_graph")), "bs": case.batch, "sl": case.length,
            "latency_ms": case.latency_ms, "good": bool(e.good), "a0": e.a0, "r0": e.r0, "a1": e.a1, "r1": e.r1,
            "build_s": job.extra.get("build_s"), "build_wall_s": job.wall_s, "host_ms": run.get("host_ms"),
            "profile": run.get("profile"), "graph_note": run.get("graph_note"), "shapes": run.get("shapes"),
            "opt_level": cfg.get("opt_level"), "passes": cfg.get("passes"),
            "preview_features": cfg.get("preview_features")}


def measure(job: Job, work: Path, args, record: dict, save) -> None:
    from engine.evaluation import evaluate_plan

    for harness in job.variant.harnesses:
        name, graphs = harness_of(harness)
        try:
            evaluate_plan(job.model, job.plan, work / "data", harness=name, cuda_graphs=graphs, runs=args.runs,
                          warmup=args.warmup, strict=False, plugin_libs=tuple(args.plugin_lib),
                          on_case=lambda c, h=harness: (record["rows"].append(row_of(job, h, c)), save()))
        except Exception as exc:
            record["errors"].append({"model": job.model, "label": f"{job.variant.label} {harness}",
                                     "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"})
            save()
        print(f"measured {job.model} {job.variant.label} {harness}", flush=True)


# suite -> {variant label: harness} of the encoders whose per-layer times at 1x16 are recorded
PROFILED = {"layouts": {"naive fp32": "contest", "per_batch fp32": "serving"},
            "plugins": {"fds_off fp32": "contest", "fds_off fp32 +ln": "contest"}}


def layer_profiles(jobs: list[Job], work: Path, suite: str = "layouts",
                   plugin_libs: tuple[str, ...] = ()) -> dict[str, Any]:
    """Per-layer times at 1x16 of the suite's PROFILED encoders (before/after its main change)."""
    from engine.harness import HARNESSES
    from engine.layer_profile import layer_times
    from engine.runtime import TrtRunner
    from engine.evaluation import case_path, load_case
    from workload.padding import PAD_SPECS

    out = {}
    for job in jobs:
        if job.model != "encoder" or job.status != "built" or job.variant.label not in PROFILED[suite]:
            continue
        harness = HARNESSES[PROFILED[suite][job.variant.label]]
        try:
            with TrtRunner(job.plan, plugin_libs, harness=harness, pad=PAD_SPECS["encoder"]) as runner:
                feeds, _ = load_case(case_path(work / "data", "encoder", 1, 16), "encoder", runner.input_names)
                m = runner.measure(feeds)
                times = layer_times(runner, feeds, runs=10)
            out[f"encoder {job.variant.label} 1x16"] = {
                "harness": harness.name, "profile": m.profile, "latency_ms": m.latency_ms, "host_ms": m.host_ms,
                "layers": len(times), "sum_ms": sum(times.values()),
                "top": [{"layer": k[:160], "ms": v} for k, v in list(times.items())[:12]]}
        except Exception as exc:
            out[f"encoder {job.variant.label} 1x16"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from engine.backend import get_backend

    t0 = time.monotonic()
    backend = get_backend()
    backend.version()               # TensorRT missing: its one-line error now, before any work
    work = Path(args.work)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    gpu = backend.gpu_name()
    out = Path(args.out) / f"{args.suite}-{gpu_slug(gpu)}.json"
    jobs = make_jobs(args, models, work)
    if args.phase == "measure":          # resume what a build phase left
        record = json.loads(out.read_text())
        record["command_measure"] = base_record(gpu)["command"]
        done = {(b["model"], b["label"]): b for b in record.get("builds", [])}
        for j in jobs:
            b = done.get((j.model, j.variant.label), {})
            j.status, j.reason, j.wall_s = b.get("status", "missing"), b.get("reason", ""), b.get("wall_s")
            if j.status == "built":
                j.extra = json.loads(j.report.read_text()) if j.report.is_file() else {}
        record["rows"], record["errors"] = [], []
    else:
        record = {**base_record(gpu), "kind": args.suite, "baselines": SUITES[args.suite][1], "rows": [], "errors": [], "builds": [],
                  "settings": {k: v for k, v in vars(args).items()}}

    def save() -> None:
        record["builds"] = [{"model": j.model, "label": j.variant.label, "status": j.status, "reason": j.reason,
                             "build_s": j.extra.get("build_s"), "wall_s": j.wall_s, "profiles": j.extra.get("profiles"),
                             "ignored": j.extra.get("ignored"), "sites": j.extra.get("sites"),
                             "plan_bytes": j.extra.get("plan_bytes"),
                             "precision_counts": j.extra.get("layer_precision_counts")} for j in jobs]
        record["summary"] = summarize(record["rows"], SUITES[args.suite][1])
        write_json(out, record)

    if args.phase != "measure":
        build_phase(args, jobs, models, work, record, save, t0)
        if args.phase == "build":
            return 0
    measure_phase(args, jobs, work, record, save)
    record["finished"] = True
    record["wall_s"] = time.monotonic() - t0
    save()
    for s in record["summary"]:
        ratio = f"{s['vs_naive']:.3f}x" if s["vs_naive"] is not None else "-"
        print(f"{s['model']:<8} {s['label']:<44} {s['sum_ms']:9.2f} ms  {s['good']}/{s['cases']} Good  {ratio}")
    print(f"wrote {out}")
    return 0


def build_phase(args, jobs: list[Job], models: list[str], work: Path, record: dict, save, t0: float) -> None:
    if any(j.variant.fields.get("layout") == "buckets" for j in jobs):
        record["padding_proof"] = padding_proofs(models, work)
        for j in jobs:
            if j.variant.fields.get("layout") == "buckets" and not record["padding_proof"][j.model].get("exact"):
                j.status, j.reason = "skipped", "padding frames is not exact for this model (padding_proof)"
    save()
    run_builds(jobs, work, args, t0, save)
    record["build_phase_s"] = time.monotonic() - t0
    save()


def measure_phase(args, jobs: list[Job], work: Path, record: dict, save) -> None:
    wait_for_file(work / "data" / ".complete", args.data_wait_s, "the test data")
    if not wait_for_file(args.torch_compiled_flag, args.torch_wait_s, "the torch compiles"):
        record["note"] = "timed while torch may still have been compiling"
    for job in jobs:
        if job.status == "built":
            measure(job, work, args, record, save)
    record["layer_profiles"] = layer_profiles(jobs, work, args.suite, tuple(args.plugin_lib))
    save()
    if args.trt_done_flag:
        Path(args.trt_done_flag).write_text("done\n")
    if args.torch_json:
        deadline, torch_rec = time.monotonic() + args.torch_wait_s, {}
        while time.monotonic() < deadline:
            torch_rec = json.loads(Path(args.torch_json).read_text()) if Path(args.torch_json).is_file() else {}
            if torch_rec.get("finished"):
                break
            time.sleep(3)
        if torch_rec:
            record["rows"] += [r for r in torch_rec.get("rows", []) if r.get("latency_ms") is not None]
            record["torch"] = torch_rec.get("torch")
            record["torch_errors"] = [r for r in torch_rec.get("rows", []) if r.get("error")]
            record["torch_finished"] = bool(torch_rec.get("finished"))


if __name__ == "__main__":
    sys.exit(main())
