"""Several optimization profiles, padding to a profile and CUDA graphs: `choose_profile` (pure) and TrtRunner
end to end over the backend test double (tests/engine/fake_backend.py). TensorRT's own profile and capture
semantics (a profile held by another context, capture refused, profile validation) are checked on the GPU:
tests/engine/test_gpu_backend.py."""
from __future__ import annotations

import numpy as np
import pytest

from engine.config import BuildConfig
from engine.errors import InputError
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


def build(onnx, tmp_path, name="e", **kw):
    from engine.build import build_engine
    return build_engine(onnx, BuildConfig("encoder", **kw), tmp_path / f"{name}.plan", progress=False,
                        log_path=tmp_path / f"{name}.log")


# --- TrtRunner on the fake ------------------------------------------------------------------------
def runner(plan, harness=SERVING, pad=TINY_PAD):
    from engine.runtime import TrtRunner
    return TrtRunner(plan, harness=harness, pad=pad)


def counts(fake):
    return {k: fake.stats[k] for k in ("executions", "captured", "graph_launches")}


def delta(fake, before):
    return {k: v - before[k] for k, v in counts(fake).items()}


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
def test_serving_outputs_match_the_unpadded_reference(fake, tiny_onnx, tmp_path, layout, cases):
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


def test_graphs_are_captured_once_per_shape_and_replayed(fake, tiny_onnx, tmp_path):
    build(tiny_onnx, tmp_path, layout="per_batch")
    with runner(tmp_path / "e.plan") as r:
        feeds = tiny_feeds(4, 64)
        before = counts(fake)
        m = r.measure(feeds, warmup=2, runs=3)
        assert m.cuda_graph and m.graph_note is None and m.profile == 2 and m.latency_ms > 0 and m.host_ms > 0
        # one warm enqueue, one enqueue captured, a replay checked against it, then 2 + 3 replays
        assert delta(fake, before) == {"executions": 1, "captured": 1, "graph_launches": 1 + 2 + 3}
        before = counts(fake)
        assert r.measure(feeds, warmup=0, runs=4).cuda_graph
        assert delta(fake, before) == {"executions": 0, "captured": 0, "graph_launches": 4}
        other = tiny_feeds(4, 64, seed=7)                 # same shape, new data: the graph reads the new inputs
        check_outputs(r.infer(other), tiny_onnx, other)
        assert delta(fake, before) == {"executions": 0, "captured": 0, "graph_launches": 5}
        r.infer(tiny_feeds(4, 100))                        # another shape on the same profile: its own graph
        assert len(fake.device().execs) == 2 and len(r._slots[2].graphs) == 2
    plain = SERVING.with_options(cuda_graphs=False)
    with runner(tmp_path / "e.plan", harness=plain) as r:
        before = counts(fake)
        m = r.measure(tiny_feeds(2, 64), warmup=1, runs=2)
        assert not m.cuda_graph and m.graph_note == "CUDA graphs off" and m.profile == 2
        assert delta(fake, before) == {"executions": 3, "captured": 0, "graph_launches": 0}


def test_an_engine_that_refuses_capture_falls_back_to_enqueue(fake, tiny_onnx, tmp_path):
    import fake_backend
    fake.capturable = False
    build(tiny_onnx, tmp_path, layout="per_batch")
    with runner(tmp_path / "e.plan") as r:
        feeds = tiny_feeds(2, 64)
        before = counts(fake)
        m = r.measure(feeds, warmup=1, runs=2)
        assert not m.cuda_graph and m.profile == 2
        assert m.graph_note.startswith("not capturable") and fake_backend.NOT_CAPTURABLE in m.graph_note
        assert delta(fake, before) == {"executions": 1 + 1 + 2, "captured": 0, "graph_launches": 0}
        before = counts(fake)
        assert "not capturable" in r.measure(feeds, warmup=0, runs=2).graph_note      # not tried again
        assert delta(fake, before) == {"executions": 2, "captured": 0, "graph_launches": 0}
        check_outputs(r.infer(feeds), tiny_onnx, feeds)
        assert not fake.device().execs                               # the refused capture was ended


def test_contest_harness_runs_profile_0_without_graphs(fake, tiny_onnx, tmp_path):
    build(tiny_onnx, tmp_path, layout="buckets")
    with runner(tmp_path / "e.plan", harness=CONTEST) as r:
        assert r.pad is None                                  # the contest harness never pads
        before = counts(fake)
        for b, t in ((2, 100), (4, 64), (16, 1024)):
            feeds = tiny_feeds(b, t)
            check_outputs(r.infer(feeds), tiny_onnx, feeds)
            m = r.measure(feeds, warmup=1, runs=2)
            assert m.profile == 0 and not m.cuda_graph and m.shapes["speech"] == [b, t, 80]
        assert delta(fake, before) == {"executions": 3 * (1 + 1 + 2), "captured": 0, "graph_launches": 0}
        assert list(r._slots) == [0]
        with pytest.raises(InputError, match="outside optimization profile 0"):
            r.infer(tiny_feeds(17, 64))


def test_without_the_contest_profile_shapes_outside_the_buckets_are_refused(fake, tiny_onnx, tmp_path):
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


def test_preview_features_reach_the_plan(fake, tiny_onnx, tmp_path):
    import fake_backend
    report = build(tiny_onnx, tmp_path, layout="per_batch", preview_features={
        "FASTER_DYNAMIC_SHAPES_0805": False, "PROFILE_SHARING_0806": True, "ALIASED_PLUGIN_IO_10_03": True})
    assert report.preview_features == {"FASTER_DYNAMIC_SHAPES_0805": False, "PROFILE_SHARING_0806": True}
    assert "no PreviewFeature.ALIASED_PLUGIN_IO_10_03" in report.ignored["preview_features.ALIASED_PLUGIN_IO_10_03"]
    assert fake.jobs[-1].settings.preview_features == report.preview_features
    header, _ = fake_backend.split_plan((tmp_path / "e.plan").read_bytes())
    assert header["preview"] == ["PROFILE_SHARING_0806"] and len(header["profiles"]) == 4


def test_close_frees_every_buffer_and_graph(fake, tiny_onnx, tmp_path):
    build(tiny_onnx, tmp_path, layout="per_batch")
    device = fake.device()
    memory = len(device.memory)
    r = runner(tmp_path / "e.plan")
    for b, t in ((1, 16), (2, 64), (4, 64), (16, 256)):
        r.infer(tiny_feeds(b, t))
    r.measure(tiny_feeds(4, 64), warmup=0, runs=1)            # events too
    assert len(device.memory) - memory == 4 * 4 and r.device_memory_bytes() > 0   # 4 contexts x 4 tensors
    assert len(device.execs) == 3              # (1, 16) on profile 1, (4, 64) on 2 (2x64 padded to it), (16, 256)
    r.close()
    r.close()
    assert len(device.memory) == memory and not device.execs
    assert r.device_memory_bytes() == 0
