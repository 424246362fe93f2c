"""On the GPU host: real TensorRT builds of the probe's tiny graph, checked against onnxruntime.

Skipped automatically where `tensorrt` is not importable (tests/conftest.py).
"""
from __future__ import annotations

import numpy as np
import pytest

from engine.config import BuildConfig
from engine.tiny_model import ort_outputs, tiny_feeds, write_calibration, write_cases

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One FP32 (TF32 off) engine of the tiny graph, shared by the tests of this module."""
    import onnx

    from engine.build import build_engine
    from engine.tiny_model import tiny_encoder_model

    d = tmp_path_factory.mktemp("gpu")
    onnx_path = d / "tiny.onnx"
    onnx.save(tiny_encoder_model(), str(onnx_path))
    report = build_engine(onnx_path, BuildConfig("encoder"), d / "fp32.plan", timing_cache=d / "t.cache",
                          log_path=d / "fp32.log", progress=False)
    return d, onnx_path, report


def test_fp32_engine_matches_onnxruntime(built):
    from engine.runtime import TrtRunner

    d, onnx_path, report = built
    assert report.flags_cleared == ["TF32"] and report.plan_bytes > 0
    with TrtRunner(d / "fp32.plan") as runner:
        for shape in ((1, 16), (4, 64), (16, 1024)):
            feeds = tiny_feeds(*shape)
            out, ref = runner.infer(feeds), ort_outputs(onnx_path, feeds)
            np.testing.assert_allclose(out["encoder_out"], ref["encoder_out"], atol=1e-3, rtol=1e-3)
            np.testing.assert_array_equal(out["encoder_out_lens"], ref["encoder_out_lens"])


def test_both_harnesses_return_positive_latencies(built):
    from engine.harness import HARNESSES
    from engine.runtime import TrtRunner

    d, _, _ = built
    for name in ("contest", "serving"):
        with TrtRunner(d / "fp32.plan", harness=HARNESSES[name]) as runner:
            m = runner.measure(tiny_feeds(4, 64))
        assert np.isfinite(m.latency_ms) and m.latency_ms > 0 and m.profile == 0


def tiny_pad():
    """The tiny graph keeps its frames (no subsampling): its own PadSpec."""
    from workload.padding import PadSpec
    return PadSpec(batch_axes={"speech": 0, "speech_lengths": 0, "encoder_out": 0, "encoder_out_lens": 0},
                   frame_axes={"speech": 1}, output_frames=lambda s: {"encoder_out": (1, s["speech"][1])})


@pytest.mark.parametrize("layout", [dict(layout="per_batch"),
                                    dict(layout="buckets", frame_buckets=[64, 1024], contest_profile=False)])
def test_layouts_pick_profiles_and_graphs_replay_exactly(built, tmp_path, layout):
    from engine.build import build_engine
    from engine.harness import HARNESSES
    from engine.runtime import TrtRunner

    d, onnx_path, _ = built
    report = build_engine(onnx_path, BuildConfig("encoder", **layout), tmp_path / "l.plan",
                          timing_cache=d / "t.cache", progress=False)
    assert len(report.profiles) == (4 if layout["layout"] == "per_batch" else 6)
    serving = HARNESSES["serving"]
    with TrtRunner(tmp_path / "l.plan", harness=serving, pad=tiny_pad()) as graphs, \
            TrtRunner(tmp_path / "l.plan", harness=serving.with_options(cuda_graphs=False), pad=tiny_pad()) as plain:
        for shape in ((1, 16), (3, 50), (16, 1024)):
            feeds = tiny_feeds(*shape)
            a, b = graphs.infer(feeds), plain.infer(feeds)
            for name in a:          # same profile, same kernels: a graph replay is bit for bit the enqueue
                np.testing.assert_array_equal(a[name], b[name])
            ref = ort_outputs(onnx_path, feeds)
            np.testing.assert_allclose(a["encoder_out"], ref["encoder_out"], atol=1e-3, rtol=1e-3)
            m = graphs.measure(feeds, warmup=2, runs=5)
            assert m.shapes["speech"][0] >= shape[0] and m.shapes["speech"][1] >= shape[1]
            if layout["layout"] == "per_batch":       # a batch-fixed profile, never the dynamic profile 0
                assert m.profile != 0 and m.shapes["speech"][0] in (1, 4, 16)


def test_inspector_sees_detailed_layers(built):
    from engine.inspect import group_precisions, inspect_plan, layers_of, precision_counts

    d, _, report = built
    info = inspect_plan(d / "fp32.plan")
    layers = layers_of(info)
    assert layers and all(isinstance(l, dict) for l in layers)          # DETAILED verbosity took effect
    counts = precision_counts(info)
    assert "fp16" not in counts and "int8" not in counts and sum(counts.values()) == len(layers)
    assert report.layer_info_path and group_precisions("encoder", info)


def test_fp16_with_pinned_fp32_softmax(built, tmp_path):
    from engine.build import build_engine
    from engine.runtime import TrtRunner

    d, onnx_path, _ = built
    cfg = BuildConfig("encoder", fp16=True, layer_precision={"softmax": "fp32", "norm": "fp32"})
    report = build_engine(onnx_path, cfg, tmp_path / "fp16.plan", timing_cache=d / "t.cache", progress=False)
    assert report.layer_precision_requests > 0 and "OBEY_PRECISION_CONSTRAINTS" in report.flags
    feeds = tiny_feeds(4, 64)
    with TrtRunner(tmp_path / "fp16.plan") as runner:
        out = runner.infer(feeds)
    np.testing.assert_allclose(out["encoder_out"], ort_outputs(onnx_path, feeds)["encoder_out"], atol=5e-2)


def test_int8_calibration_builds_and_runs(built, tmp_path):
    from engine.build import build_engine
    from engine.runtime import TrtRunner
    from engine.trt_compat import capabilities

    if "INT8" not in capabilities().builder_flags:
        pytest.skip("this TensorRT has no INT8 flag")
    d, onnx_path, _ = built
    calib = write_calibration(tmp_path / "calibration-encoder.npz")
    report = build_engine(onnx_path, BuildConfig("encoder", int8=True), tmp_path / "int8.plan",
                          calibration=calib, progress=False)
    assert report.calibration["batches"] == 4
    with TrtRunner(tmp_path / "int8.plan") as runner:
        out = runner.infer(tiny_feeds(4, 64))
    assert np.isfinite(out["encoder_out"]).all()


def test_evaluate_plan_end_to_end(built):
    from engine.evaluation import evaluate_plan

    d, onnx_path, _ = built
    grid = write_cases(d / "data", onnx_path)
    cases = evaluate_plan("encoder", d / "fp32.plan", d / "data", grid=grid, runs=5, harness="contest")
    assert [(c.batch, c.length) for c in cases] == grid and all(c.errors.good for c in cases)
