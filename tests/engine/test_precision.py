"""Per-layer precision planning: which layers get which precision, which are left alone and why;
int8 groups on the fake TensorRT and the calibration cache they share."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import BuildConfig
from engine.precision import NOT_INT8_REASON, LayerDesc, plan_precisions, resolve_group

FF0 = "/encoder/encoders.0/feed_forward/w_1/MatMul"
FF3 = "/encoder/encoders.3/feed_forward/w_2/MatMul"
SOFTMAX = "/encoder/encoders.0/self_attn/Softmax"
AFTER_NORM = "/encoder/after_norm/Div"


def layer(i, name, type_="MATRIX_MULTIPLY", dtypes=("FLOAT",), shape=None, net_out=None):
    return LayerDesc(i, name, type_, tuple(dtypes), tuple(shape or (False,) * len(dtypes)),
                     tuple(net_out or (False,) * len(dtypes)))


def test_most_specific_group_wins():
    pins = {"feed_forward": "fp16", "block3.feed_forward": "fp32"}
    assert resolve_group("encoder", FF0, pins) == ("feed_forward", "fp16")
    assert resolve_group("encoder", FF3, pins) == ("block3.feed_forward", "fp32")
    assert resolve_group("encoder", "/encoder/Shape", pins) is None
    assert resolve_group("encoder", FF0, {}) is None


def test_block_key_without_kind_key_leaves_other_blocks_alone():
    pins = {"block3.feed_forward": "fp16"}
    assert resolve_group("encoder", FF0, pins) is None
    assert resolve_group("encoder", FF3, pins) == ("block3.feed_forward", "fp16")


def test_assignments_and_output_types():
    layers = [layer(0, FF0), layer(1, SOFTMAX, "SOFTMAX"), layer(2, AFTER_NORM, "ELEMENTWISE", net_out=(True,)),
              layer(3, "/encoder/encoders.0/feed_forward/Constant", "CONSTANT"),
              layer(4, "/encoder/encoders.0/feed_forward/Cast", "CAST"),
              layer(5, "/encoder/encoders.0/feed_forward/Equal", "ELEMENTWISE", dtypes=("BOOL",)),
              layer(6, "/encoder/encoders.0/feed_forward/Shape", "SHAPE", dtypes=("INT32",)),
              layer(7, "/encoder/encoders.0/feed_forward/Slice", "SLICE", shape=(True,)),
              layer(8, "/encoder/Shape_1", "SHAPE", dtypes=("INT32",))]
    plan = plan_precisions("encoder", layers, {"feed_forward": "fp16", "softmax": "fp32", "norm": "fp16",
                                                "conv_module": "fp16"})
    got = {a.index: (a.group, a.precision, a.output_indices) for a in plan.assignments}
    assert got == {0: ("feed_forward", "fp16", (0,)), 1: ("softmax", "fp32", (0,)),
                   2: ("norm", "fp16", ())}           # a network output keeps its dtype
    assert plan.skipped == {"type CONSTANT": 1, "type CAST": 1, "no float output": 1, "type SHAPE": 1,
                            "shape tensor output": 1}
    assert plan.unmatched_groups == ["conv_module"]
    assert plan.counts == {"fp16": 2, "fp32": 1}


def test_int8_sets_precision_but_no_output_type():
    plan = plan_precisions("encoder", [layer(0, FF0)], {"feed_forward": "int8"})
    assert [(a.precision, a.output_indices) for a in plan.assignments] == [("int8", ())]


def test_only_float_outputs_get_an_output_type():
    plan = plan_precisions("decoder", [layer(0, "/decoder/decoders.1/src_attn/TopK", "TOPK",
                                             dtypes=("FLOAT", "INT32"))], {"cross_attention": "fp16"})
    assert plan.assignments[0].output_indices == (0,)


def test_int8_group_pins_its_matmuls_and_convs_only():
    # TensorRT 8.6 refuses an int8 PWN(Sigmoid, Mul): the pointwise layers of an int8 group stay float.
    ff = "/encoder/encoders.0/feed_forward"
    layers = [layer(0, f"{ff}/w_1/MatMul"), layer(1, f"{ff}/w_1/Add", "ELEMENTWISE"),
              layer(2, f"{ff}/activation/Sigmoid", "ACTIVATION"), layer(3, f"{ff}/activation/Mul", "ELEMENTWISE"),
              layer(4, "/encoder/encoders.0/conv_module/pointwise_conv1/Conv", "CONVOLUTION"),
              layer(5, "/encoder/encoders.0/conv_module/Sigmoid", "ACTIVATION")]
    pins = {"feed_forward": "int8", "conv_module": "int8"}
    plan = plan_precisions("encoder", layers, pins)
    assert [(a.index, a.precision) for a in plan.assignments] == [(0, "int8"), (4, "int8")]
    assert plan.skipped == {NOT_INT8_REASON: 4} and plan.unmatched_groups == []
    fallback = plan_precisions("encoder", layers, pins, int8_fallback="fp16")
    assert [(a.index, a.precision, a.output_indices) for a in fallback.assignments] == [
        (0, "int8", ()), (1, "fp16", (0,)), (2, "fp16", (0,)), (3, "fp16", (0,)), (4, "int8", ()), (5, "fp16", (0,))]
    with pytest.raises(ValueError, match="int8_fallback"):
        plan_precisions("encoder", layers, pins, int8_fallback="int8")


def _fake_build(onnx, tmp_path, name, calibration, **knobs):
    from engine.build import build_engine
    return build_engine(onnx, BuildConfig("encoder", **knobs), tmp_path / f"{name}.plan", progress=False,
                        log_path=tmp_path / f"{name}.log", calibration=calibration)


def test_int8_pinned_group_on_the_fake_builds_int8_matmuls_only(fake, tiny_onnx, tmp_path):
    from engine.inspect import honoured, inspect_plan
    from engine.tiny_model import write_calibration
    import fake_backend

    calib = write_calibration(tmp_path / "calibration-encoder.npz", batches=2)
    cfg = dict(int8=True, fp16=True, layer_precision={"feed_forward": "int8", "norm": "fp32"})
    report = _fake_build(tiny_onnx, tmp_path, "q", calib, **cfg)
    header, _ = fake_backend.split_plan((tmp_path / "q.plan").read_bytes())
    names = {str(i): name for i, (name, _, _) in enumerate(header["layers"])}
    int8 = sorted(names[i] for i, p in header["precisions"].items() if p == "INT8")
    assert int8 == ["/encoder/encoders.0/feed_forward/w_1/MatMul"]           # not its Add, Sigmoid, Mul
    assert report.layer_precision_skipped[NOT_INT8_REASON] == 3 and report.layer_precision_counts["int8"] == 1
    check = honoured(BuildConfig("encoder", **cfg), inspect_plan(tmp_path / "q.plan"))
    ff = check["groups"]["feed_forward"]
    assert ff["honoured"] and ff["seen"] == {"int8": 1} and ff["others"] == {"fp16": 3}
    assert check["groups"]["norm"]["honoured"] and check["honoured"]


def test_calibration_cache_is_shared_by_trials_of_one_graph_and_algorithm(fake, tiny_onnx, tmp_path):
    from engine.calibrator import calibration_cache_name
    from engine.prepare import prepare_onnx
    from engine.tiny_model import write_calibration

    calib = write_calibration(tmp_path / "calibration-encoder.npz", batches=2)
    first = _fake_build(tiny_onnx, tmp_path, "a", calib, int8=True, layer_precision={"feed_forward": "int8"})
    # another trial of the same graph: other pins, other builder knobs -> the same cache, read back
    again = _fake_build(tiny_onnx, tmp_path, "b", calib, int8=True, fp16=True, opt_level=1,
                        layer_precision={"feed_forward": "int8", "norm": "fp32"})
    assert not first.calibration["cache_used"] and again.calibration["cache_used"]
    assert again.calibration["cache"] == first.calibration["cache"]
    minmax = _fake_build(tiny_onnx, tmp_path, "c", calib, int8=True, calibrator="minmax")
    assert not minmax.calibration["cache_used"] and minmax.calibration["cache"] != first.calibration["cache"]
    # a rewritten graph (a prepared ONNX, named by its source hash and pass list) has its own cache
    prepared = prepare_onnx(tiny_onnx, BuildConfig("encoder", passes=["layernorm"]), tmp_path / "cache")
    assert calibration_cache_name(prepared.path, "entropy2", calib) != Path(first.calibration["cache"])
    assert calibration_cache_name(prepared.path, "entropy2", calib).parent == prepared.path.parent
    # other calibration data: another cache
    other = write_calibration(tmp_path / "other.npz", batches=3)
    assert calibration_cache_name(tiny_onnx, "entropy2", other) != Path(first.calibration["cache"])
