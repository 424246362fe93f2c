"""On the GPU host: the real TensorRT backend (engine/trt_backend.py, engine/trt_build.py) end to end.

What the CPU tests' double (tests/engine/fake_backend.py) cannot check: that BuildJob settings reach
TensorRT (FP16, a per-layer FP32 pin, restricted tactic sources, the timing cache round trip and merge,
two optimization profiles), that a plan loads with its I/O and profiles, runs with profile selection and
CUDA graphs and matches onnxruntime, the inspector's JSON, the layer profiler, and TensorRT's own errors
in one-line BuildError / PlanError. Run: `python3.10 -m pytest -q -m gpu tests`.
"""
from __future__ import annotations

import numpy as np
import pytest

from engine.config import BuildConfig
from engine.tiny_model import ort_outputs, tiny_feeds, write_calibration

pytestmark = pytest.mark.gpu

PINS = {"softmax": "fp32", "norm": "fp32"}
# Profile 0 spans the encoder range (batch 1..16, frames 16..1024); profile 1 is the static bucket 4x64.
TWO_PROFILES = dict(layout="buckets", batch_buckets=[4], frame_buckets=[64])


@pytest.fixture(scope="module")
def trt():
    try:
        import tensorrt
    except ImportError as exc:
        pytest.skip(f"tensorrt is not importable here ({exc}): run on the GPU host with python3.10")
    return tensorrt


@pytest.fixture(scope="module")
def backend(trt):
    from engine.backend import get_backend, set_backend
    from engine.trt_backend import TrtBackend

    previous = set_backend(None)            # the real one, whatever an earlier test left
    real = get_backend()
    assert isinstance(real, TrtBackend)
    yield real
    set_backend(previous)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    import onnx

    from engine.tiny_model import tiny_encoder_model
    path = tmp_path_factory.mktemp("gpu_backend") / "tiny.onnx"
    onnx.save(tiny_encoder_model(), str(path))
    return path


def tiny_pad():
    """The tiny graph keeps its frames (no subsampling): its own PadSpec."""
    from workload.padding import PadSpec
    return PadSpec(batch_axes={"speech": 0, "speech_lengths": 0, "encoder_out": 0, "encoder_out_lens": 0},
                   frame_axes={"speech": 1}, output_frames=lambda s: {"encoder_out": (1, s["speech"][1])})


def tactics(caps) -> list[str]:
    return [t for t in ("CUBLAS", "CUBLAS_LT") if t in caps.tactic_sources] or list(caps.tactic_sources[-1:])


@pytest.fixture(scope="module")
def fp16_build(backend, onnx_path):
    """FP16 + FP32-pinned softmax/norm + restricted tactic sources + two profiles, built twice through one
    timing cache: (dir, config, first report, second report)."""
    from engine.build import build_engine

    d = onnx_path.parent
    caps = backend.capabilities()
    if "FP16" not in caps.builder_flags:
        pytest.skip("this TensorRT has no FP16 flag (strongly typed only)")
    cfg = BuildConfig("encoder", fp16=True, layer_precision=PINS, tactic_sources=tactics(caps), **TWO_PROFILES)
    first = build_engine(onnx_path, cfg, d / "a.plan", timing_cache=d / "t.cache", log_path=d / "a.log",
                         progress=False)
    second = build_engine(onnx_path, cfg, d / "b.plan", timing_cache=d / "t.cache", log_path=d / "b.log",
                          progress=True)
    return d, cfg, first, second


@pytest.fixture(scope="module")
def fp32_two_profiles(backend, onnx_path):
    """The runtime's plan: FP32, the same two profiles. (TensorRT 8.6 builds the FP16 plan above but cannot
    make an execution context on it: Myelin "missing offset in id2offset", gputests-h200.log of 2026-12-03;
    test_fp16_pinned_plan_makes_a_context records it.)"""
    from engine.build import build_engine

    d = onnx_path.parent
    build_engine(onnx_path, BuildConfig("encoder", **TWO_PROFILES), d / "r.plan", progress=False)
    return d / "r.plan"


def test_backend_discovers_this_tensorrt(trt, backend):
    from engine.trt_compat import parse_version
    caps = backend.capabilities()
    assert backend.version() == trt.__version__ and caps.version == parse_version(trt.__version__)
    assert caps.tactic_sources and "WORKSPACE" in caps.memory_pools and caps.inspector
    assert "TF32" in caps.builder_flags and "DETAILED" in caps.profiling_verbosity
    assert caps.progress_monitor == (caps.version[0] >= 10)
    env = backend.environment()
    assert env["tensorrt"] == trt.__version__ and env["cuda_runtime"] > 0 and env["cuda_driver"] > 0
    assert backend.gpu_name() != "unknown GPU" and "bad device" in backend.device().self_test()


def test_settings_reach_tensorrt_and_the_timing_cache_round_trips(backend, fp16_build):
    d, cfg, first, second = fp16_build
    caps = backend.capabilities()
    for r in (first, second):
        assert r.flags[:1] == ["FP16"] and "OBEY_PRECISION_CONSTRAINTS" in r.flags and r.flags_cleared == ["TF32"]
        assert r.tactic_sources == tactics(caps) and "tactic_sources" not in r.ignored, r.ignored
        assert r.layer_precision_counts.get("fp32", 0) > 0 and not any(k.startswith("refused") for k in
                                                                         r.layer_precision_skipped)
        assert [p["role"] for p in r.profiles] == ["contest", "bucket"] and r.plan_bytes > 0
        assert r.opt_level == cfg.opt_level and r.workspace_mib == cfg.workspace_mib
    if caps.timing_cache_problem:
        assert "timing_cache" in first.ignored and not (d / "t.cache").exists()
        return
    saved = first.timing_cache["saved_bytes"]
    assert first.timing_cache["loaded_bytes"] == 0 and saved > 0 and "note" not in first.timing_cache
    assert second.timing_cache["loaded_bytes"] == saved and "note" not in second.timing_cache
    assert (d / "t.cache").stat().st_size == second.timing_cache["saved_bytes"]


def test_timing_caches_of_two_builds_merge(backend, fp16_build, onnx_path, tmp_path):
    from engine.build import build_engine

    d, _, _, _ = fp16_build
    if backend.capabilities().timing_cache_problem:
        pytest.skip(backend.capabilities().timing_cache_problem)
    other = build_engine(onnx_path, BuildConfig("encoder"), tmp_path / "o.plan", timing_cache=tmp_path / "o.cache",
                         progress=False)
    assert other.timing_cache["saved_bytes"] > 0
    merged = backend.merge_timing_caches((d / "t.cache").read_bytes(), (tmp_path / "o.cache").read_bytes())
    assert merged
    (tmp_path / "m.cache").write_bytes(merged)
    again = build_engine(onnx_path, BuildConfig("encoder"), tmp_path / "m.plan", timing_cache=tmp_path / "m.cache",
                         progress=False)
    assert again.timing_cache["loaded_bytes"] == len(merged) and "note" not in again.timing_cache


def test_plan_loads_with_its_io_and_two_profiles(backend, fp16_build):
    d, _, _, _ = fp16_build
    engine = backend.load((d / "a.plan").read_bytes(), d / "a.plan")
    try:
        io = {t.name: (t.is_input, t.dtype) for t in engine.tensors}
        assert io == {"speech": (True, np.float32), "speech_lengths": (True, np.int32),
                      "encoder_out": (False, np.float32), "encoder_out_lens": (False, np.int32)}
        assert len(engine.profiles) == 2
        assert engine.profiles[0]["speech"] == ((1, 16, 80), (16, 1024, 80), (16, 1024, 80))
        assert engine.profiles[1]["speech"] == ((4, 64, 80),) * 3 and engine.profiles[1]["speech_lengths"] == ((4,),) * 3
    finally:
        engine.close()


def test_runner_selects_profiles_replays_graphs_and_matches_onnxruntime(fp32_two_profiles, onnx_path):
    from engine.harness import HARNESSES
    from engine.runtime import TrtRunner

    plan = fp32_two_profiles
    serving = HARNESSES["serving"]
    with TrtRunner(plan, harness=serving, pad=tiny_pad()) as graphs, \
            TrtRunner(plan, harness=serving.with_options(cuda_graphs=False), pad=tiny_pad()) as plain:
        for (b, t), profile in {(4, 64): 1, (3, 50): 1, (2, 300): 0, (16, 1024): 0}.items():
            feeds = tiny_feeds(b, t)
            a, p = graphs.infer(feeds), plain.infer(feeds)
            ref = ort_outputs(onnx_path, feeds)
            assert a["encoder_out"].shape == ref["encoder_out"].shape == (b, t, 80)
            np.testing.assert_allclose(a["encoder_out"], ref["encoder_out"], atol=5e-2, rtol=5e-2)
            np.testing.assert_array_equal(a["encoder_out_lens"], ref["encoder_out_lens"])
            for name in a:          # same profile, same kernels: a graph replay is the enqueue bit for bit
                np.testing.assert_array_equal(a[name], p[name])
            m = graphs.measure(feeds, warmup=2, runs=5)
            assert m.profile == profile and m.latency_ms > 0, (b, t)
            if profile == 1:        # the static bucket: padded up to 4x64, replayed from a CUDA graph
                assert m.shapes == {"speech": [4, 64, 80], "speech_lengths": [4]}
                assert m.cuda_graph and m.graph_note is None, m.graph_note
            assert not plain.measure(feeds, warmup=1, runs=2).cuda_graph
    with TrtRunner(plan, harness=HARNESSES["contest"]) as contest:
        m = contest.measure(tiny_feeds(4, 64), warmup=1, runs=3)
        assert m.profile == 0 and not m.cuda_graph and m.graph_note == "CUDA graphs off"


def test_inspector_json_shows_the_fp32_pins(fp16_build):
    from engine.inspect import honoured, inspect_plan, layers_of, load_layer_info, precision_counts

    d, cfg, first, _ = fp16_build
    info = inspect_plan(d / "a.plan")
    layers = layers_of(info)
    assert layers and all(isinstance(l, dict) for l in layers)         # DETAILED verbosity reached TensorRT
    assert load_layer_info(first.layer_info_path) == info
    assert sum(precision_counts(info).values()) == len(layers)
    groups = honoured(cfg, info)["groups"]
    assert any(g["seen"] or g["hidden"] for g in groups.values()), groups
    for group, g in groups.items():             # no visible layer of a pinned group in fp16 (Myelin may hide some)
        assert "fp16" not in g["seen"], (group, g)


def test_layer_profiler_reports_every_run(fp32_two_profiles):
    from engine.layer_profile import layer_times
    from engine.runtime import TrtRunner

    with TrtRunner(fp32_two_profiles) as runner:
        times = layer_times(runner, tiny_feeds(2, 64), runs=3)
        assert times and all(ms >= 0 for ms in times.values())
        assert runner.infer(tiny_feeds(2, 64))["encoder_out"].shape == (2, 64, 80)   # unprofiled again


def test_speed_knobs_are_set_or_said_ignored(backend, onnx_path, tmp_path):
    from engine.build import build_engine

    caps = backend.capabilities()
    preview = {"PROFILE_SHARING_0806": True} if "PROFILE_SHARING_0806" in caps.preview_features else {}
    cfg = BuildConfig("encoder", opt_level=1, max_aux_streams=1, workspace_mib=256, sparse_weights=True,
                      preview_features=preview)
    report = build_engine(onnx_path, cfg, tmp_path / "k.plan", progress=False)
    assert report.opt_level == 1 and report.max_aux_streams == 1 and report.workspace_mib == 256, report.ignored
    assert "SPARSE_WEIGHTS" in report.flags and report.preview_features == preview


def test_a_profile_held_by_another_context(backend, fp32_two_profiles):
    from engine.errors import PlanError

    plan = fp32_two_profiles
    engine, device = backend.load(plan.read_bytes(), plan), backend.device()
    stream = device.stream_create()
    try:
        first = engine.create_context(1, stream)
        if backend.capabilities().version[0] < 10:      # 8.6 without PROFILE_SHARING_0806: one context a profile
            with pytest.raises(PlanError, match="refused optimization profile 1"):
                engine.create_context(1, stream)
        else:                                          # 10+: profiles are shared
            assert engine.create_context(1, stream).set_input_shape("speech", (4, 64, 80))
        del first
    finally:
        device.stream_destroy(stream)
        engine.close()


def test_fp16_pinned_plan_makes_a_context_or_says_why(backend, fp16_build):
    """TensorRT 8.6 cannot make a context on this plan (Myelin "missing offset in id2offset",
    gputests-fixture-h200.log): a one-line PlanError with TensorRT's text, not a crash; 10+: it runs."""
    from engine.errors import PlanError

    d, _, _, _ = fp16_build
    engine, device = backend.load((d / "a.plan").read_bytes(), d / "a.plan"), backend.device()
    stream = device.stream_create()
    try:
        if backend.capabilities().version[:2] == (8, 6):
            with pytest.raises(PlanError, match="cannot create an execution context for .*: ") as err:
                engine.create_context(0, stream)
            assert "\n" not in str(err.value)
        else:
            assert engine.create_context(0, stream).set_input_shape("speech", (2, 64, 80))
    finally:
        device.stream_destroy(stream)
        engine.close()


def test_int8_calibration_then_its_cache(backend, onnx_path, tmp_path):
    from engine.build import build_engine
    from engine.runtime import TrtRunner

    caps = backend.capabilities()
    if "INT8" not in caps.builder_flags or "entropy2" not in caps.calibrators:
        pytest.skip("this TensorRT has no INT8 flag or entropy2 calibrator")
    calib = write_calibration(tmp_path / "calibration-encoder.npz")
    cfg = BuildConfig("encoder", int8=True, fp16=True, layer_precision={"feed_forward": "int8"})
    first = build_engine(onnx_path, cfg, tmp_path / "q.plan", calibration=calib,
                         calibration_cache=tmp_path / "q.calib", progress=False)
    again = build_engine(onnx_path, cfg, tmp_path / "r.plan", calibration=calib,
                         calibration_cache=tmp_path / "q.calib", progress=False)
    assert not first.calibration["cache_used"] and again.calibration["cache_used"]
    assert first.layer_precision_counts.get("int8") == 1 and (tmp_path / "q.calib").stat().st_size > 0
    with TrtRunner(tmp_path / "r.plan") as runner:
        assert np.isfinite(runner.infer(tiny_feeds(4, 64))["encoder_out"]).all()


def test_tensorrt_errors_are_one_line(backend, onnx_path, tmp_path):
    from engine.build import build_engine
    from engine.errors import BuildError, PlanError

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(BuildError, match="cannot parse") as err:
        build_engine(bad, BuildConfig("encoder"), tmp_path / "x.plan", progress=False)
    assert "\n" not in str(err.value)
    with pytest.raises(BuildError, match="network input 'speech' has no profile shape"):
        build_engine(onnx_path, BuildConfig("decoder"), tmp_path / "d.plan", progress=False)
    with pytest.raises(PlanError, match="cannot load") as err:
        backend.load(b"not an engine" * 10, tmp_path / "garbage.plan")
    assert "\n" not in str(err.value)
