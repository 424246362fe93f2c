"""Per-layer precision planning: which layers get which precision, which are left alone and why."""
from __future__ import annotations

from engine.precision import LayerDesc, plan_precisions, resolve_group

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
