"""Several optimization profiles, padding to a profile and CUDA graphs: `choose_profile` (pure), the
strict fake's profile / capture semantics, and TrtRunner end to end on the fake (tests/engine/fake_trt.py)."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

from engine.config import BuildConfig
from engine.errors import InputError, PlanError
from engine.harness import HARNESSES
from engine.tiny_model import ort_outputs, tiny_feeds
from engine.profiles import layout_profiles
from engine.runtime import choose_profile
from workload.padding import PAD_SPECS, PadSpec
from workload.shapes import input_shapes

# The probe's tiny encoder has the encoder's I/O names but no subsampling: encoder_out keeps
# the input's T frames (PAD_SPECS["encoder"] would trim it to encoder_out_len(T)).
TINY_PAD = PadSpec(batch_axes={"speech": 0, "speech_lengths": 0, "encoder_out": 0, "encoder_out_lens": 0},
                   frame_axes={"speech": 1}, output_frames=lambda s: {"encoder_out": (1, s["speech"][1])})
SERVING, CONTEST = HARNESSES["serving"], HARNESSES["contest"]
ENC = PAD_SPECS["encoder"]


def profiles_of(**kw) -> list[dict]:
    return [p.input_shapes("encoder") for p in layout_profiles(BuildConfig("encoder", **kw))]


def shapes(b: int, t: int) -> dict:
    return input_shapes("encoder", b, t)


# --- choose_profile ------------------------------------------------------------------------
def test_per_batch_layout_prefers_the_fixed_batch_profile_and_pads_up_to_it():
    specs = layout_profiles(BuildConfig("encoder", layout="per_batch"))
    assert [(s.role, s.batch, s.frames) for s in specs] == [
        ("contest", (1, 16), (16, 1024)), ("batch", (1, 1), (16, 1024)), ("batch", (4, 4), (16, 1024)),
        ("batch", (16, 16), (16, 1024))]
    profiles = profiles_of(layout="per_batch")
    assert choose_profile(profiles, shapes(4, 64), ENC) == (2, shapes(4, 64))
    assert choose_profile(profiles, shapes(1, 1024), ENC) == (1, shapes(1, 1024))
    assert choose_profile(profiles, shapes(2, 64), ENC) == (2, shapes(4, 64))       # batch padded 2 -> 4
    assert choose_profile(profiles, shapes(5, 300), ENC) == (3, shapes(16, 300))
    # the contest harness: profile 0 only, never padded
    assert choose_profile(profiles, shapes(2, 64), ENC, allowed=[0]) == (0, shapes(2, 64))
    assert choose_profile(profiles, shapes(17, 64), ENC, allowed=[0]) is None
    # without a PadSpec only exact fits count: the tightest profile that holds the shape as it is
    assert choose_profile(profiles, shapes(2, 64)) == (0, shapes(2, 64))
    assert choose_profile(profiles, shapes(4, 64)) == (2, shapes(4, 64))


def test_buckets_layout_picks_the_smallest_bucket_holding_the_shape():
    profiles = profiles_of(layout="buckets")
    assert len(profiles) == 1 + 3 * 3         # profile 0, then (batch 1, 4, 16) x (frames 64, 256, 1024)
    index = {(b, t): 1 + i * 3 + j for i, b in enumerate((1, 4, 16)) for j, t in enumerate((64, 256, 1024))}
    assert profiles[index[4, 256]]["speech"] == ((4, 256, 80),) * 3
    assert choose_profile(profiles, shapes(4, 64), ENC) == (index[4, 64], shapes(4, 64))
    assert choose_profile(profiles, shapes(4, 100), ENC) == (index[4, 256], shapes(4, 256))   # frames padded
    assert choose_profile(profiles, shapes(2, 100), ENC) == (index[4, 256], shapes(4, 256))   # and batch
    assert choose_profile(profiles, shapes(1, 16), ENC) == (index[1, 64], shapes(1, 64))
    assert choose_profile(profiles, shapes(9, 1000), ENC) == (index[16, 1024], shapes(16, 1024))
    assert choose_profile(profiles, shapes(4, 100)) == (0, shapes(4, 100))     # no PadSpec: only profile 0 fits


def test_nothing_holds_the_shape():
    nocontest = profiles_of(layout="buckets", contest_profile=False)
    assert len(nocontest) == 9
    assert choose_profile(nocontest, shapes(17, 64), ENC) is None
    assert choose_profile(nocontest, shapes(4, 1025), ENC) is None
    assert choose_profile(nocontest, shapes(4, 100)) is None          # no bucket is 100 frames, no padding
    assert choose_profile(nocontest, {"speech": (4, 100, 80)}, ENC) is None     # not the engine's inputs
    # an axis the PadSpec does not name is never padded: feature width 79 fits no profile
    assert choose_profile(nocontest, {"speech": (4, 64, 79), "speech_lengths": (4,)}, ENC) is None


# --- the fake's profile and capture semantics -------------------------------------------------
def build(onnx, tmp_path, name="e", **kw):
    from engine.build import build_engine
    return build_engine(onnx, BuildConfig("encoder", **kw), tmp_path / f"{name}.plan", progress=False,
                        log_path=tmp_path / f"{name}.log")


def load_engine(trt, plan):
    from engine.trt_compat import get_logger
    logger = get_logger(trt)
    return logger.sink, trt.Runtime(logger).deserialize_cuda_engine(plan.read_bytes())


def test_fake_engine_contexts_and_profiles(fake_trt, tiny_onnx, tmp_path):
    trt, _ = fake_trt
    build(tiny_onnx, tmp_path, layout="per_batch")
    sink, engine = load_engine(trt, tmp_path / "e.plan")
    assert engine.num_optimization_profiles == 4
    assert engine.get_tensor_profile_shape("speech", 2) == [(4, 16, 80), (4, 1024, 80), (4, 1024, 80)]
    assert engine.get_tensor_profile_shape("speech_lengths", 0) == [(1,), (16,), (16,)]
    sink.clear_errors()
    assert engine.get_tensor_profile_shape("speech", 4) == [(), (), ()] and "API Usage Error" in sink.last_errors(1)[0]
    with pytest.raises(TypeError):
        engine.get_tensor_profile_shape("speech", "2")
    first = engine.create_execution_context()
    second = engine.create_execution_context()
    assert first.active_optimization_profile == 0 and second.active_optimization_profile == -1   # 8.6
    assert not second.set_input_shape("speech", (4, 64, 80))
    with pytest.raises(RuntimeError, match="Error in set optimization profile async"):
        second.set_optimization_profile_async(0, 0)              # profile 0 is the first context's
    assert "used by another execution context" in sink.last_errors(1)[0]
    with pytest.raises(RuntimeError):
        second.set_optimization_profile_async(4, 0)
    with pytest.raises(TypeError):
        second.set_optimization_profile_async(2, None)
    assert second.set_optimization_profile_async(2, 0) is True and second.active_optimization_profile == 2
    assert second.set_input_shape("speech", (4, 64, 80)) and not second.set_input_shape("speech", (2, 64, 80))
    assert first.set_input_shape("speech", (2, 64, 80))
    del first                                                   # profile 0 is free again
    assert engine.create_execution_context().active_optimization_profile == 0


def test_fake_build_validates_every_profile(fake_trt, tiny_onnx):
    from engine.trt_compat import get_logger, network_flags
    trt, _ = fake_trt
    logger = get_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    assert trt.OnnxParser(network, logger).parse_from_file(str(tiny_onnx))
    config = builder.create_builder_config()
    for k, speech in enumerate([((1, 16, 80), (4, 64, 80), (16, 1024, 80)), ((4, 16, 80), (4, 64, 80), (4, 64, 81))]):
        profile = builder.create_optimization_profile()
        profile.set_shape("speech", *speech)
        profile.set_shape("speech_lengths", *((s[0],) for s in speech))
        assert config.add_optimization_profile(profile) == k
    logger.sink.clear_errors()
    assert builder.build_serialized_network(network, config) is None        # feature width 81 in profile 1
    assert "profile 1" in logger.sink.last_errors(1)[0]
    missing = builder.create_optimization_profile()
    missing.set_shape("speech", (1, 16, 80), (1, 16, 80), (1, 16, 80))
    config2 = builder.create_builder_config()
    config2.add_optimization_profile(config._profiles[0])
    config2.add_optimization_profile(missing)
    assert builder.build_serialized_network(network, config2) is None
    assert "speech_lengths: dynamic input is missing dimensions in profile 1" in logger.sink.last_errors(1)[0]


def test_fake_stream_capture_records_instead_of_running(fake_trt):
    import fake_trt as ft
    trt, rt = fake_trt
    E, S = rt.cudaError_t, rt.cudaStreamCaptureStatus
    _, stream = rt.cudaStreamCreate()
    _, dev = rt.cudaMalloc(16)
    src = np.arange(4, dtype=np.float32)
    mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
    assert rt.cudaStreamIsCapturing(stream) == (E.cudaSuccess, S.cudaStreamCaptureStatusNone)
    assert rt.cudaStreamBeginCapture(stream, mode) == (E.cudaSuccess,)
    assert rt.cudaStreamBeginCapture(stream, mode)[0] == E.cudaErrorIllegalState
    assert rt.cudaStreamIsCapturing(stream)[1] == S.cudaStreamCaptureStatusActive
    assert rt.cudaMemcpyAsync(dev, src.ctypes.data, 16, rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream)[0] == \
        E.cudaSuccess
    assert ctypes.string_at(dev, 16) == bytes(16)                   # recorded, not run
    err, graph = rt.cudaStreamEndCapture(stream)
    assert err == E.cudaSuccess and rt.cudaStreamEndCapture(stream)[0] == E.cudaErrorIllegalState
    err, exe = rt.cudaGraphInstantiate(graph, 0)
    assert err == E.cudaSuccess and rt.cudaGraphDestroy(graph) == (E.cudaSuccess,)
    before = trt._stats["graph_launches"]
    assert rt.cudaGraphLaunch(exe, stream) == (E.cudaSuccess,)
    assert ctypes.string_at(dev, 16) == src.tobytes() and trt._stats["graph_launches"] == before + 1
    with pytest.raises(TypeError):
        rt.cudaGraphLaunch(graph, stream)                          # a graph is not an executable graph
    # synchronizing (or allocating) during a capture invalidates it
    rt.cudaStreamBeginCapture(stream, mode)
    assert rt.cudaStreamSynchronize(stream) == (E.cudaErrorStreamCaptureUnsupported,)
    assert rt.cudaStreamIsCapturing(stream)[1] == S.cudaStreamCaptureStatusInvalidated
    assert rt.cudaStreamEndCapture(stream) == (E.cudaErrorStreamCaptureInvalidated, None)
    rt.cudaStreamBeginCapture(stream, mode)
    assert rt.cudaMalloc(64) == (E.cudaErrorStreamCaptureUnsupported, None)
    assert rt.cudaStreamEndCapture(stream)[0] == E.cudaErrorStreamCaptureInvalidated
    assert rt.cudaGraphExecDestroy(exe) == (E.cudaSuccess,) and rt.cudaGraphExecDestroy(exe)[0] != E.cudaSuccess
    rt.cudaFree(dev)
    rt.cudaStreamDestroy(stream)
    assert not ft._CAPTURE and not ft._GRAPHS and not ft._GRAPH_EXECS


# --- TrtRunner on the fake ------------------------------------------------------------------------
def runner(plan, harness=SERVING, pad=TINY_PAD):
    from engine.runtime import TrtRunner
    return TrtRunner(plan, harness=harness, pad=pad)


def counts(trt):
    return {k: trt._stats[k] for k in ("executions", "captured", "graph_launches")}


def delta(trt, before):
    return {k: v - before[k] for k, v in counts(trt).items()}


def check_outputs(out, onnx, feeds):
    ref = ort_outputs(onnx, feeds)
    assert set(out) == set(ref)
    for name in ref:
        assert out[name].shape == ref[name].shape, name
        np.testing.assert_allclose(out[name], ref[name], rtol=0, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("layout,cases", [
    ("per_batch", {(4, 64): (2, (4, 64)), (2, 64): (2, (4, 64)), (1, 16): (1, (1, 16)), (3, 100): (2, (4, 100)),
                   (7, 33): (3, (16, 33))}),
    ("buckets", {(4, 64): (4, (4, 64)), (2, 100): (5, (4, 256)), (1, 16): (1, (1, 64)), (5, 300): (9, (16, 1024))}),
])
def test_serving_outputs_match_the_unpadded_reference(fake_trt, tiny_onnx, tmp_path, layout, cases):
    report = build(tiny_onnx, tmp_path, layout=layout)
    n = 4 if layout == "per_batch" else 10
    assert len(report.profiles) == n and report.profiles[0] == {"role": "contest", "batch": [1, 16],
                                                                "frames": [16, 1024], "opt": [16, 1024]}
    if layout == "per_batch":
        assert report.layout == "per_batch[1,4,16]"
        assert report.profiles[2] == {"role": "batch", "batch": [4, 4], "frames": [16, 1024], "opt": [4, 1024]}
    else:
        assert report.layout == "buckets[1,4,16]x[64,256,1024]"
        assert report.profiles[5] == {"role": "bucket", "batch": [4, 4], "frames": [256, 256], "opt": [4, 256]}
    with runner(tmp_path / "e.plan") as r:
        assert r.num_profiles == n
        for (b, t), (profile, (pb, pt)) in cases.items():
            feeds = tiny_feeds(b, t)
            check_outputs(r.infer(feeds), tiny_onnx, feeds)
            m = r.measure(feeds, warmup=1, runs=2)
            assert m.profile == profile, (b, t)
            assert m.shapes == {"speech": [pb, pt, 80], "speech_lengths": [pb]} and m.cuda_graph
        assert sorted(r._slots) == sorted({0} | {p for p, _ in cases.values()})   # a context per profile used


def test_graphs_are_captured_once_per_shape_and_replayed(fake_trt, tiny_onnx, tmp_path):
    import fake_trt as ft
    trt, _ = fake_trt
    build(tiny_onnx, tmp_path, layout="per_batch")
    with runner(tmp_path / "e.plan") as r:
        feeds = tiny_feeds(4, 64)
        before = counts(trt)
        m = r.measure(feeds, warmup=2, runs=3)
        assert m.cuda_graph and m.graph_note is None and m.profile == 2 and m.latency_ms > 0 and m.host_ms > 0
        # one warm enqueue, one enqueue captured, a replay checked against it, then 2 + 3 replays
        assert delta(trt, before) == {"executions": 1, "captured": 1, "graph_launches": 1 + 2 + 3}
        before = counts(trt)
        assert r.measure(feeds, warmup=0, runs=4).cuda_graph
        assert delta(trt, before) == {"executions": 0, "captured": 0, "graph_launches": 4}
        other = tiny_feeds(4, 64, seed=7)                 # same shape, new data: the graph reads the new inputs
        check_outputs(r.infer(other), tiny_onnx, other)
        assert delta(trt, before) == {"executions": 0, "captured": 0, "graph_launches": 5}
        r.infer(tiny_feeds(4, 100))                        # another shape on the same profile: its own graph
        assert len(ft._GRAPH_EXECS) == 2 and len(r._slots[2].graphs) == 2 and not ft._CAPTURE
    plain = SERVING.with_options(cuda_graphs=False)
    with runner(tmp_path / "e.plan", harness=plain) as r:
        before = counts(trt)
        m = r.measure(tiny_feeds(2, 64), warmup=1, runs=2)
        assert not m.cuda_graph and m.graph_note == "CUDA graphs off" and m.profile == 2
        assert delta(trt, before) == {"executions": 3, "captured": 0, "graph_launches": 0}


def test_an_engine_that_refuses_capture_falls_back_to_enqueue(fake_trt, tiny_onnx, tmp_path):
    import fake_trt as ft
    trt, _ = fake_trt
    trt._capturable = False
    build(tiny_onnx, tmp_path, layout="per_batch")
    with runner(tmp_path / "e.plan") as r:
        feeds = tiny_feeds(2, 64)
        before = counts(trt)
        m = r.measure(feeds, warmup=1, runs=2)
        assert not m.cuda_graph and m.profile == 2
        assert m.graph_note.startswith("not capturable") and ft.NOT_CAPTURABLE in m.graph_note
        assert delta(trt, before) == {"executions": 1 + 1 + 2, "captured": 0, "graph_launches": 0}
        before = counts(trt)
        assert "not capturable" in r.measure(feeds, warmup=0, runs=2).graph_note      # not tried again
        assert delta(trt, before) == {"executions": 2, "captured": 0, "graph_launches": 0}
        check_outputs(r.infer(feeds), tiny_onnx, feeds)
        assert not ft._CAPTURE and not ft._GRAPHS and not ft._GRAPH_EXECS     # the refused capture was ended


def test_contest_harness_runs_profile_0_without_graphs(fake_trt, tiny_onnx, tmp_path):
    trt, _ = fake_trt
    build(tiny_onnx, tmp_path, layout="buckets")
    with runner(tmp_path / "e.plan", harness=CONTEST) as r:
        assert r.pad is None                                  # the contest harness never pads
        before = counts(trt)
        for b, t in ((2, 100), (4, 64), (16, 1024)):
            feeds = tiny_feeds(b, t)
            check_outputs(r.infer(feeds), tiny_onnx, feeds)
            m = r.measure(feeds, warmup=1, runs=2)
            assert m.profile == 0 and not m.cuda_graph and m.shapes["speech"] == [b, t, 80]
        assert delta(trt, before) == {"executions": 3 * (1 + 1 + 2), "captured": 0, "graph_launches": 0}
        assert list(r._slots) == [0]
        with pytest.raises(InputError, match="outside optimization profile 0"):
            r.infer(tiny_feeds(17, 64))


def test_without_the_contest_profile_shapes_outside_the_buckets_are_refused(fake_trt, tiny_onnx, tmp_path):
    report = build(tiny_onnx, tmp_path, layout="buckets", contest_profile=False)
    assert [p["role"] for p in report.profiles] == ["bucket"] * 9 and report.layout.endswith("-nocontest")
    with runner(tmp_path / "e.plan") as r:
        assert r.measure(tiny_feeds(3, 16), warmup=0, runs=1).profile == 3             # bucket (4, 64)
        for b, t in ((17, 64), (2, 1030)):
            with pytest.raises(InputError, match="outside any optimization profile"):
                r.infer(tiny_feeds(b, t))
    with runner(tmp_path / "e.plan", harness=CONTEST) as r:     # profile 0 is the (1, 64) bucket here
        check_outputs(r.infer(tiny_feeds(1, 64)), tiny_onnx, tiny_feeds(1, 64))
        with pytest.raises(InputError, match="outside optimization profile 0"):
            r.infer(tiny_feeds(4, 64))


def test_a_profile_held_by_another_context_is_a_plan_error(fake_trt, tiny_onnx, tmp_path):
    build(tiny_onnx, tmp_path, layout="per_batch")
    with runner(tmp_path / "e.plan") as r:
        squatter = r.engine.create_execution_context()
        assert squatter.set_optimization_profile_async(2, 0)
        with pytest.raises(PlanError, match="refused optimization profile 2: .*used by another execution context"):
            r.infer(tiny_feeds(4, 64))
        del squatter
    # PROFILE_SHARING_0806 (TensorRT 8.6's preview feature) lets contexts share a profile
    build(tiny_onnx, tmp_path, "shared", layout="per_batch", preview_features={"PROFILE_SHARING_0806": True})
    with runner(tmp_path / "shared.plan") as r:
        squatter = r.engine.create_execution_context()
        assert squatter.active_optimization_profile == 0 and squatter.set_optimization_profile_async(2, 0)
        check_outputs(r.infer(tiny_feeds(4, 64)), tiny_onnx, tiny_feeds(4, 64))


def test_preview_features_reach_the_plan(fake_trt, tiny_onnx, tmp_path, monkeypatch):
    import fake_trt as ft
    trt, _ = fake_trt
    seen = {}
    original = trt.Builder.build_serialized_network

    def spy(self, network, config):
        seen.update({n: config.get_preview_feature(v) for n, v in trt.PreviewFeature.__members__.items()})
        return original(self, network, config)
    monkeypatch.setattr(trt.Builder, "build_serialized_network", spy)
    assert list(trt.PreviewFeature.__members__) == ft.PREVIEW_86
    report = build(tiny_onnx, tmp_path, layout="per_batch", preview_features={
        "FASTER_DYNAMIC_SHAPES_0805": False, "PROFILE_SHARING_0806": True, "ALIASED_PLUGIN_IO_10_03": True})
    assert report.preview_features == {"FASTER_DYNAMIC_SHAPES_0805": False, "PROFILE_SHARING_0806": True}
    assert "no PreviewFeature.ALIASED_PLUGIN_IO_10_03" in report.ignored["preview_features.ALIASED_PLUGIN_IO_10_03"]
    assert seen == {"FASTER_DYNAMIC_SHAPES_0805": False, "DISABLE_EXTERNAL_TACTIC_SOURCES_FOR_CORE_0805": True,
                    "PROFILE_SHARING_0806": True}
    header, _ = ft.split_plan((tmp_path / "e.plan").read_bytes())
    assert header["preview"] == ["DISABLE_EXTERNAL_TACTIC_SOURCES_FOR_CORE_0805", "PROFILE_SHARING_0806"]
    assert len(header["profiles"]) == 4 and header["capturable"] is True
    config = trt.Builder(trt.Logger()).create_builder_config()
    with pytest.raises(TypeError):
        config.set_preview_feature("PROFILE_SHARING_0806", True)
    with pytest.raises(TypeError):
        config.set_preview_feature(trt.PreviewFeature.PROFILE_SHARING_0806, 1)


def test_close_frees_every_buffer_and_graph(fake_trt, tiny_onnx, tmp_path):
    import fake_trt as ft
    build(tiny_onnx, tmp_path, layout="per_batch")
    memory = len(ft._MEMORY)
    r = runner(tmp_path / "e.plan")
    for b, t in ((1, 16), (2, 64), (4, 64), (16, 256)):
        r.infer(tiny_feeds(b, t))
    r.measure(tiny_feeds(4, 64), warmup=0, runs=1)            # events too
    assert len(ft._MEMORY) - memory == 4 * 4 and r.device_memory_bytes() > 0   # 4 contexts x 4 tensors
    assert len(ft._GRAPH_EXECS) == 3              # (1, 16) on profile 1, (4, 64) on 2 (2x64 padded to it), (16, 256)
    r.close()
    r.close()
    assert len(ft._MEMORY) == memory and not ft._GRAPH_EXECS and not ft._GRAPHS and not ft._CAPTURE
    assert r.device_memory_bytes() == 0


def test_tensorrt_10_puts_every_context_on_profile_0_and_shares_profiles(monkeypatch, tiny_onnx, tmp_path):
    import fake_trt as ft
    trt, _ = ft.install(monkeypatch, "10.0.1")
    assert list(trt.PreviewFeature.__members__) == ["PROFILE_SHARING_0806"]
    build(tiny_onnx, tmp_path, layout="per_batch")
    with runner(tmp_path / "e.plan") as r:
        other = r.engine.create_execution_context()
        assert other.active_optimization_profile == 0 and other.set_optimization_profile_async(2, 0)
        feeds = tiny_feeds(2, 64)
        check_outputs(r.infer(feeds), tiny_onnx, feeds)
        assert r.measure(feeds, warmup=0, runs=1).profile == 2
