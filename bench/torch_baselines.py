"""PyTorch baselines on the test cases (run with the torch Python, not the TensorRT one).

    python bench/torch_baselines.py --data WORK/data --out OUT/torch-baselines.json
        [--models encoder,decoder] [--grid 1x16,...] [--variants eager-fp32,eager-fp16,compile-ro-fp16,...]
        [--compile-deadline-s 600] [--compiled-flag FILE --barrier FILE --barrier-timeout-s 900]
    python bench/torch_baselines.py --merge A.json B.json --out OUT.json   (one file of per-model runs)

Two phases, so that compiling never overlaps anyone's timing:
1. compile: every compile variant at every shape (torch.compile, dynamic=False: one
   specialised graph per shape, as a serving deployment per shape would; the `-dyn`
   variants compile once with dynamic=True and only record a CUDA graph per further
   shape, so max-autotune fits every shape of the grid in one compile budget); no new
   compile starts after --compile-deadline-s (the shapes left are recorded as such), while a
   shape whose dynamic graph exists still runs.
   Then --compiled-flag is written.
2. time: once --barrier exists (the TensorRT measurements of the same session are
   done), every variant at every shape: outputs checked against the npz references
   with the contest's metrics, then CUDA-event median of --runs after --warmup.

Variants (label in the result rows):
- eager-fp32        FP32, TF32 off (the reference's numerics)
- eager-fp16        torch.autocast float16
- compile-ro-fp16   torch.compile mode reduce-overhead (CUDA graphs), autocast float16
- compile-ma-fp16   torch.compile mode max-autotune (autotuned GEMMs + CUDA graphs), autocast float16
- compile-ma-fp32   the same in FP32 (TF32 off)
- compile-ro-fp16-dyn, compile-ma-fp16-dyn   the fp16 compiles with dynamic=True (batch and
                    frames symbolic; a size of 1 is still specialised, so batch 1 compiles again)
Rows follow shared/conventions/results.md (harness "torch"); the JSON is rewritten after
every measurement. The weights must be those of the data: same --config/--seed/--checkpoint
as `workload data`.
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import base_record, ensure_repo_on_path, finite_or_none, wait_for_file, write_json  # noqa: E402

ensure_repo_on_path()

class Variant(NamedTuple):
    mode: str | None            # torch.compile mode, None for eager
    fp16: bool                  # under float16 autocast
    dynamic: bool = False       # torch.compile(dynamic=True): one compile for every shape
    label: str = ""             # the result rows' label


VARIANTS = {
    "eager-fp32": Variant(None, False, label="torch eager fp32"),
    "eager-fp16": Variant(None, True, label="torch eager fp16 (autocast)"),
    "compile-ro-fp16": Variant("reduce-overhead", True, label="torch.compile reduce-overhead fp16"),
    "compile-ma-fp16": Variant("max-autotune", True, label="torch.compile max-autotune fp16"),
    "compile-ma-fp32": Variant("max-autotune", False, label="torch.compile max-autotune fp32"),
    "compile-ro-fp16-dyn": Variant("reduce-overhead", True, True, "torch.compile reduce-overhead fp16 dynamic"),
    "compile-ma-fp16-dyn": Variant("max-autotune", True, True, "torch.compile max-autotune fp16 dynamic"),
}
INPUTS = {"encoder": ("speech", "speech_lengths"),
          "decoder": ("encoder_out", "encoder_out_lens", "hyps_pad_sos_eos", "hyps_lens_sos", "ctc_score")}


def specialisation(variant: str, model: str, batch: int, frames: int) -> tuple:
    """The graph torch.compile makes for a shape: one per shape, or with dynamic=True one per model and
    batch-is-1 (sizes 0 and 1 are specialised; 1x16..1x1024 share one, 4x16..16x1024 another: on the
    H200 a max-autotune compile took 243 s and every further shape of it 0.2 s)."""
    return (variant, model, batch == 1) if VARIANTS[variant].dynamic else (variant, model, batch, frames)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/torch_baselines.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="work/data", help="test data folder (default work/data)")
    p.add_argument("--out", default="bench/results/torch-baselines.json", help="result JSON")
    p.add_argument("--models", default="encoder,decoder")
    p.add_argument("--grid", help="BATCHxFRAMES comma list (default: the judged grid)")
    # max-autotune first (issue 9's comparison), dynamic: four compiles cover the grid (one per shape would not fit)
    p.add_argument("--variants", default="compile-ma-fp16-dyn,eager-fp32,eager-fp16,compile-ro-fp16-dyn",
                   help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--compile-deadline-s", type=float, default=600.0,
                   help="no compile starts after this many seconds of the compile phase (default 600)")
    p.add_argument("--compiled-flag", help="file written when the compile phase ends")
    p.add_argument("--barrier", help="wait for this file before timing (another process's measurements)")
    p.add_argument("--barrier-timeout-s", type=float, default=1200.0)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--config", default="aishell", choices=("aishell", "tiny"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint")
    p.add_argument("--device", default="cuda")
    p.add_argument("--merge", nargs="+", metavar="JSON",
                   help="only merge these result files (e.g. one run per model, compiled side by side) into --out")
    return p.parse_args(argv)


def cuda_time_ms(torch, fn: Callable[[], Any], warmup: int, runs: int, device: str = "cuda") -> float:
    """Median of per-run CUDA-event times after warm-up (wall clock on a CPU device, for tests)."""
    import statistics

    for _ in range(warmup):
        fn()
    if device == "cpu":
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
        return float(statistics.median(samples))
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(runs):
        start.record()
        fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end))
    return float(statistics.median(samples))


def load_modules(args, torch):
    from workload.checkpoint import load_model
    from workload.model_config import ModelConfig
    from workload.wrappers import DecoderWrapper, EncoderWrapper

    cfg = ModelConfig.by_name(args.config)
    model = load_model(cfg, args.seed, args.checkpoint)
    dev = torch.device(args.device)
    return {"encoder": EncoderWrapper(model.encoder).eval().to(dev),
            "decoder": DecoderWrapper(model.decoder, cfg.beam, cfg.ctc_weight).eval().to(dev)}


def runner(torch, module, fp16: bool, device: str):
    """The callable a variant times: the module, under float16 autocast for fp16."""
    if not fp16:
        return module

    def run(*inputs):
        with torch.autocast(device, dtype=torch.float16):
            return module(*inputs)
    return run


def load_feeds(torch, path: Path, model: str, device: str):
    import numpy as np

    from scoring.metrics import rules

    with np.load(path) as z:
        feeds = tuple(torch.from_numpy(z[k]).to(device) for k in INPUTS[model])
        reference = {r.name: z[r.name] for r in rules(model)}
    return feeds, reference


def merge_records(records: list[dict]) -> dict:
    """One record of several runs (one per model): their rows in order; finished only if every run finished."""
    merged = {k: v for k, v in records[0].items() if k not in ("rows", "settings", "finished", "note")}
    commands = [rec["command"] for rec in records if rec.get("command")]
    if commands:
        merged["command"] = " & ".join(commands)          # the runs were started side by side
    merged["rows"] = [row for rec in records for row in rec.get("rows", [])]
    merged["settings"] = [rec.get("settings") for rec in records]
    merged["finished"] = all(rec.get("finished") for rec in records)
    notes = [rec["note"] for rec in records if rec.get("note")]
    if notes:
        merged["note"] = "; ".join(notes)
    return merged


def merge_files(paths: list[str], out: str) -> int:
    import json
    try:
        records = [json.loads(Path(p).read_text()) for p in paths]
    except (OSError, ValueError) as exc:
        print(f"error: cannot read a result file to merge: {exc}", file=sys.stderr)
        return 2
    write_json(Path(out), merge_records(records))
    print(f"merged {len(paths)} files into {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.merge:
        return merge_files(args.merge, args.out)
    import torch

    from scoring.metrics import compare_case, rules
    from workload.data import parse_data_grid
    from workload.shapes import GRID

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: torch sees no CUDA GPU", file=sys.stderr)
        return 2
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        print(f"error: unknown variant(s) {bad}; known: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch._dynamo.config.cache_size_limit = 256          # one specialised graph per shape and variant
    data = Path(args.data)
    grid = parse_data_grid(args.grid) if args.grid else GRID
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    record: dict[str, Any] = {**base_record(gpu), "kind": "torch-baselines",
                              "settings": {k: v for k, v in vars(args).items()}, "rows": []}
    out = Path(args.out)
    write_json(out, record)
    modules = load_modules(args, torch)
    shapes = [(m, b, t) for m in models for b, t in grid if (data / f"{m}-{b}-{t}.npz").is_file()]

    # --- phase 1: compile every compile variant at every shape --------------------------
    compiled: dict[tuple[str, str], Callable] = {}
    compile_s: dict[tuple[str, str, int, int], float | str] = {}
    t_phase = time.monotonic()
    specialised: set[tuple] = set()        # the graphs compiled so far (specialisation())
    for variant in [v for v in variants if VARIANTS[v].mode is not None]:
        mode, fp16, dynamic, _ = VARIANTS[variant]
        for model, b, t in shapes:
            # past the deadline only a shape whose graph exists runs (a CUDA graph to record, 0.2 s on the H200)
            if (time.monotonic() - t_phase > args.compile_deadline_s
                    and specialisation(variant, model, b, t) not in specialised):
                compile_s[(variant, model, b, t)] = f"skipped: compile deadline {args.compile_deadline_s:.0f} s passed"
                continue
            key = (variant, model)
            if key not in compiled:
                compiled[key] = torch.compile(runner(torch, modules[model], fp16, args.device), mode=mode,
                                              dynamic=dynamic)
            feeds, _ = load_feeds(torch, data / f"{model}-{b}-{t}.npz", model, args.device)
            t0 = time.monotonic()
            try:
                with torch.inference_mode():
                    compiled[key](*feeds)
                    compiled[key](*feeds)     # reduce-overhead records its CUDA graph on the 2nd/3rd call
                    compiled[key](*feeds)
                    if args.device == "cuda":
                        torch.cuda.synchronize()
                compile_s[(variant, model, b, t)] = time.monotonic() - t0
                specialised.add(specialisation(variant, model, b, t))
                print(f"compiled {variant} {model} {b}x{t} in {compile_s[(variant, model, b, t)]:.1f} s", flush=True)
            except Exception as exc:
                compile_s[(variant, model, b, t)] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                print(f"compile {variant} {model} {b}x{t}: {compile_s[(variant, model, b, t)]}", flush=True)
            del feeds
    if args.compiled_flag:
        Path(args.compiled_flag).write_text("compiled\n")
    if not wait_for_file(args.barrier, args.barrier_timeout_s, "the TensorRT timings"):
        record["note"] = f"barrier {args.barrier} never appeared: timed anyway"

    # --- phase 2: check and time every variant at every shape -----------------------------
    for model, b, t in shapes:
        feeds, reference = load_feeds(torch, data / f"{model}-{b}-{t}.npz", model, args.device)
        for variant in variants:
            mode, fp16 = VARIANTS[variant].mode, VARIANTS[variant].fp16
            row: dict[str, Any] = {"model": model, "label": VARIANTS[variant].label, "harness": "torch", "layout": "-",
                                   "precision": "fp16" if fp16 else "fp32",
                                   "cuda_graph": mode in ("reduce-overhead", "max-autotune"),
                                   "bs": b, "sl": t, "variant": variant}
            record["rows"].append(row)
            try:
                if mode is None:
                    fn_raw = runner(torch, modules[model], fp16, args.device)
                else:
                    spent = compile_s.get((variant, model, b, t))
                    if not isinstance(spent, float):
                        row["error"] = spent or "not compiled"
                        continue
                    row["build_s"] = spent
                    fn_raw = compiled[(variant, model)]
                fn = lambda: fn_raw(*feeds)                              # noqa: E731
                with torch.inference_mode():
                    got = fn()
                    outputs = {r.name: got[i].float().cpu().numpy() if got[i].is_floating_point()
                               else got[i].cpu().numpy() for i, r in enumerate(rules(model))}
                    del got
                    errors = compare_case(model, outputs, reference)
                    del outputs
                    row["latency_ms"] = cuda_time_ms(torch, fn, args.warmup, args.runs, args.device)
                row.update(a0=errors.a0, r0=errors.r0, a1=errors.a1, r1=errors.r1, good=bool(errors.good),
                           worst_ratio=finite_or_none(errors.worst_ratio))
                print(f"{model} {variant} {b}x{t}: {row['latency_ms']:.3f} ms {'Good' if row['good'] else 'Bad'}",
                      flush=True)
            except Exception as exc:   # one failing shape/variant must not end the run
                row["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"
                print(f"{model} {variant} {b}x{t}: {row['error']}", file=sys.stderr, flush=True)
            finally:
                write_json(out, record)
        feeds = reference = None
        gc.collect()
    record["finished"] = True
    write_json(out, record)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
