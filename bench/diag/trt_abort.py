"""Diagnose process-killing TensorRT 8.6.0 failures on the GPU host, one process per case.

    python3.10 bench/diag/trt_abort.py --json OUT.json [CASE ...]

Cases build the probe's tiny encoder graph (engine/probe.py) with the plain
TensorRT API and one suspect knob each; an abort or segfault kills only that
case's process, and its exit status goes into the JSON (134 = abort, 139 = SIGSEGV).
  cache_default   timing cache serialized after a build, default tactic sources
  cache_nocudnn   the same with the CUDNN tactic source cleared
  opt4, opt5      builder optimization level 4 / 5, no timing cache
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = ("cache_default", "cache_nocudnn", "opt4", "opt5")


def run_case(case: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import onnx
    import tensorrt as trt
    from engine.tiny_model import tiny_encoder_model

    d = Path(tempfile.mkdtemp())
    onnx.save(tiny_encoder_model(), str(d / "t.onnx"))
    logger = trt.Logger(trt.Logger.WARNING)
    b = trt.Builder(logger)
    n = b.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    p = trt.OnnxParser(n, logger)
    assert p.parse((d / "t.onnx").read_bytes())
    c = b.create_builder_config()
    prof = b.create_optimization_profile()
    prof.set_shape("speech", (1, 16, 80), (64, 1024, 80), (64, 1024, 80))
    prof.set_shape("speech_lengths", (1,), (64,), (64,))
    c.add_optimization_profile(prof)
    if case.startswith("opt"):
        c.builder_optimization_level = int(case[3:])
    if case == "cache_nocudnn":
        c.set_tactic_sources(int(c.get_tactic_sources()) & ~(1 << int(trt.TacticSource.CUDNN)))
    cache = c.create_timing_cache(b"") if case.startswith("cache") else None
    if cache is not None:
        c.set_timing_cache(cache, False)
    assert b.build_serialized_network(n, c) is not None
    if cache is not None:
        print("timing cache bytes", len(memoryview(c.get_timing_cache().serialize()).tobytes()))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("cases", nargs="*", default=list(CASES))
    args = ap.parse_args()
    if args.case:
        run_case(args.case)
        return 0
    results = {}
    for case in args.cases:
        r = subprocess.run([sys.executable, __file__, "--case", case], capture_output=True, text=True, timeout=300)
        tail = [l for l in (r.stdout + r.stderr).splitlines() if "[TRT] [W]" not in l][-3:]
        results[case] = {"returncode": r.returncode, "tail": tail}
        print(case, r.returncode, tail[-1:] if tail else "", flush=True)
    if args.json:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from bench_common import write_diag_record
        write_diag_record(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
