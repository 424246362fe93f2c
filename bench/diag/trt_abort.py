"""Diagnose two aborts seen with TensorRT 8.6.0 on H200: timing-cache serialize, opt level 5.

    python3.10 bench/diag/trt_abort.py CASE    (CASE: cache_plain, cache_sink, opt5_plain, opt5_sink, opt5_nocudnn, cache_nocudnn)
Each case runs in its own process (an abort kills it); the exit code tells.
"""
import sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import onnx
import tensorrt as trt
from engine.probe import tiny_encoder_model

case = sys.argv[1]
d = Path(tempfile.mkdtemp())
onnx.save(tiny_encoder_model(), str(d / "t.onnx"))
if case.endswith("sink"):
    from engine.trt_compat import get_logger
    logger = get_logger(trt)
else:
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
if case.startswith("opt5"):
    c.builder_optimization_level = 5
if case.endswith("nocudnn"):
    c.set_tactic_sources(int(c.get_tactic_sources()) & ~(1 << int(trt.TacticSource.CUDNN)))
cache = c.create_timing_cache(b"")
c.set_timing_cache(cache, False)
s = b.build_serialized_network(n, c)
print("built", s is not None, flush=True)
cur = c.get_timing_cache()
print("got cache", cur, flush=True)
blob = cur.serialize()
print("serialized current", len(memoryview(blob).tobytes()), flush=True)
blob2 = cache.serialize()
print("serialized original", len(memoryview(blob2).tobytes()), flush=True)
