"""PyTorch baselines on the test cases (run with the torch Python, not the TensorRT one).

    python bench/torch_baselines.py --data WORK/data --out OUT/torch-baselines.json
        [--models encoder,decoder] [--grid 1x16,...] [--variants eager-fp32,eager-fp16,compile]
        [--compile-mode max-autotune] [--compile-grid 1x16,16x256,64x1024] [--compile-budget-s 240]

Variants, each timed with CUDA events (median of --runs after --warmup):
- eager-fp32: FP32 with TF32 off (the reference's numerics);
- eager-fp16: torch.autocast float16 (or --fp16-style half: a .half() copy of the model);
- compile:    torch.compile(mode=--compile-mode, dynamic=False), FP32 / TF32 off; max-autotune
              includes CUDA graphs. Compiles once per shape, so it runs on --compile-grid only and
              stops compiling after --compile-budget-s; a failing compile is recorded and skipped.
Errors against the npz references use scoring.metrics (the contest's metrics and Good/Bad).
The weights must be those of the data: same --config/--seed/--checkpoint as `workload data`.
The JSON is rewritten after every measurement.
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import base_record, ensure_repo_on_path, finite_or_none, write_json  # noqa: E402

ensure_repo_on_path()

VARIANTS = ("eager-fp32", "eager-fp16", "compile")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
INPUTS = {"encoder": ("speech", "speech_lengths"),
          "decoder": ("encoder_out", "encoder_out_lens", "hyps_pad_sos_eos", "hyps_lens_sos", "ctc_score")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/torch_baselines.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="work/data", help="test data folder (default work/data)")
    p.add_argument("--out", default="bench/results/torch-baselines.json", help="result JSON")
    p.add_argument("--models", default="encoder,decoder")
    p.add_argument("--grid", help="BATCHxFRAMES comma list (default: every test case found)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--fp16-style", default="autocast", choices=("autocast", "half"))
    p.add_argument("--compile-mode", default="max-autotune", choices=COMPILE_MODES)
    p.add_argument("--compile-grid", default="1x16,16x256,64x1024", help="shapes for the compile variant")
    p.add_argument("--compile-budget-s", type=float, default=240.0,
                   help="no new compile starts after this many seconds of compiling (default 240)")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--config", default="aishell", choices=("aishell", "tiny"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint")
    p.add_argument("--device", default="cuda")
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import numpy as np
    import torch

    from scoring.metrics import compare_case, rules
    from workload.data import parse_grid
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
    data = Path(args.data)
    grid = parse_grid(args.grid) if args.grid else GRID
    compile_grid = set(parse_grid(args.compile_grid)) if args.compile_grid else set()
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    record: dict[str, Any] = {**base_record(gpu), "kind": "torch-baselines",
                              "settings": {k: v for k, v in vars(args).items()}, "rows": []}
    out = Path(args.out)
    write_json(out, record)
    modules = load_modules(args, torch)
    compile_spent = 0.0

    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        module = modules[model]
        half = None
        for b, t in grid:
            path = data / f"{model}-{b}-{t}.npz"
            if not path.is_file():
                continue
            with np.load(path) as z:
                feeds = {k: torch.from_numpy(z[k]).to(args.device) for k in INPUTS[model]}
                reference = {r.name: z[r.name] for r in rules(model)}
            for variant in variants:
                row: dict[str, Any] = {"model": model, "variant": variant, "batch": b, "length": t}
                record["rows"].append(row)
                try:
                    if variant == "eager-fp32":
                        fn = lambda: module(*feeds.values())                                   # noqa: E731
                    elif variant == "eager-fp16" and args.fp16_style == "autocast":
                        def fn():
                            with torch.autocast("cuda", dtype=torch.float16):
                                return module(*feeds.values())
                    elif variant == "eager-fp16":
                        if half is None:
                            import copy
                            half = copy.deepcopy(module).half()
                        hf = {k: v.half() if v.is_floating_point() else v for k, v in feeds.items()}
                        fn = lambda: half(*hf.values())                                         # noqa: E731
                    else:
                        if (b, t) not in compile_grid:
                            record["rows"].pop()
                            continue
                        if compile_spent > args.compile_budget_s:
                            row["error"] = f"skipped: compile budget {args.compile_budget_s:.0f} s spent"
                            continue
                        torch._dynamo.reset()
                        compiled = torch.compile(module, mode=args.compile_mode, dynamic=False)
                        t0 = time.monotonic()
                        try:
                            with torch.inference_mode():
                                compiled(*feeds.values())
                                torch.cuda.synchronize()
                        finally:
                            row["compile_s"] = time.monotonic() - t0
                            compile_spent += row["compile_s"]
                        fn = lambda: compiled(*feeds.values())                                  # noqa: E731
                    with torch.inference_mode():
                        got = fn()
                        outputs = {r.name: got[i].float().cpu().numpy() if got[i].is_floating_point()
                                   else got[i].cpu().numpy() for i, r in enumerate(rules(model))}
                        del got
                        errors = compare_case(model, outputs, reference)
                        del outputs
                        row["latency_ms"] = cuda_time_ms(torch, fn, args.warmup, args.runs, args.device)
                    row.update(a0=errors.a0, r0=errors.r0, a1=errors.a1, r1=errors.r1, good=bool(errors.good),
                               worst_ratio=finite_or_none(errors.worst_ratio),
                               throughput=b * t / row["latency_ms"] * 1000 if row["latency_ms"] > 0 else None)
                    print(f"{model} {variant} {b}x{t}: {row['latency_ms']:.3f} ms {'Good' if row['good'] else 'Bad'}",
                          flush=True)
                except Exception as exc:   # one failing shape/variant must not end the run
                    row["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"
                    print(f"{model} {variant} {b}x{t}: {row['error']}", file=sys.stderr, flush=True)
                finally:
                    gc.collect()
                    if args.device == "cuda":
                        torch.cuda.empty_cache()
                    write_json(out, record)
            feeds = reference = None       # free the case before loading the next
    record["finished"] = True
    write_json(out, record)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
