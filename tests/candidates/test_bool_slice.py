"""bool_slice: no Slice reads bool/uint8 afterwards; names, dtypes and values are kept."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from candidates import apply_passes
from candidates.framework import infer_shapes
from ort_check import assert_same_outputs, op_count, run_ort
from wenet_models import STYLES

NARROW = (TensorProto.BOOL, TensorProto.UINT8)


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    model = infer_shapes(model)
    types = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        types[vi.name] = vi.type.tensor_type.elem_type
    for init in model.graph.initializer:
        types[init.name] = init.data_type
    return types


def _narrow_slices(model: onnx.ModelProto) -> list[str]:
    types = _elem_types(model)
    return [n.name for n in model.graph.node if n.op_type == "Slice" and types.get(n.input[0]) in NARROW]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("model", ["encoder", "decoder"])
def test_no_narrow_slice_left(workloads, model, style):
    for wl in workloads:
        before = wl.load(style, model)
        narrow = _narrow_slices(before)
        after, sites = apply_passes(before, ["bool_slice"], model_name=model)
        assert sites["bool_slice"] == len(narrow), f"{wl.source}: {sites} vs {narrow}"
        if model == "encoder":  # the x4 subsampling mask: mask[:, :, :-2:2][:, :, :-2:2]
            assert len(narrow) == 2, f"{wl.source}: {narrow}"
        assert _narrow_slices(after) == []
        assert op_count(after, "Slice") == op_count(before, "Slice")
        assert op_count(after, "Cast") == op_count(before, "Cast") + 2 * len(narrow)
        assert [o.name for o in after.graph.output] == [o.name for o in before.graph.output]
        assert [o.type for o in after.graph.output] == [o.type for o in before.graph.output]
        types = _elem_types(after)
        rewritten = [n for n in after.graph.node if n.op_type == "Slice" and n.name in narrow]
        assert all(types[n.input[0]] == TensorProto.INT32 for n in rewritten)


def _synthetic(with_value_info: bool) -> onnx.ModelProto:
    """x: uint8 [B, T] sliced to a graph output; m = (x > 3) bool sliced twice, the last one a graph output."""
    i64 = lambda name, v: helper.make_tensor(name, TensorProto.INT64, [len(v)], v)  # noqa: E731
    nodes = [
        helper.make_node("Slice", ["x", "s0", "e2", "ax1", "st2"], ["x_sliced"], name="a"),
        helper.make_node("Greater", ["x", "three"], ["m"], name="b"),
        helper.make_node("Slice", ["m", "s0", "e2", "ax1", "st2"], ["m1"], name="c"),
        helper.make_node("Slice", ["m1", "s0", "e2", "ax1", "st2"], ["m2"], name="d"),
        helper.make_node("Cast", ["m1"], ["m1_f"], to=TensorProto.FLOAT, name="e"),
    ]
    inits = [i64("s0", [0]), i64("e2", [-2]), i64("ax1", [1]), i64("st2", [2]),
             helper.make_tensor("three", TensorProto.UINT8, [], [3])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, ["B", "T"])],
        [helper.make_tensor_value_info("x_sliced", TensorProto.UINT8, None),
         helper.make_tensor_value_info("m2", TensorProto.BOOL, None),
         helper.make_tensor_value_info("m1_f", TensorProto.FLOAT, None)], inits)
    if with_value_info:
        graph.value_info.extend([helper.make_tensor_value_info("m", TensorProto.BOOL, None),
                                 helper.make_tensor_value_info("m1", TensorProto.BOOL, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("with_value_info", [True, False])
def test_synthetic_uint8_and_bool_graph_outputs(with_value_info):
    before = _synthetic(with_value_info)
    after, sites = apply_passes(before, ["bool_slice"])
    assert sites["bool_slice"] == 3
    assert _narrow_slices(after) == []
    assert [o.name for o in after.graph.output] == ["x_sliced", "m2", "m1_f"]
    again, sites2 = apply_passes(after, ["bool_slice"])
    assert sites2["bool_slice"] == 0
    rng = np.random.default_rng(0)
    for shape in ((1, 9), (3, 17), (2, 2)):
        feeds = {"x": rng.integers(0, 8, size=shape).astype(np.uint8)}
        assert_same_outputs(before, after, feeds)
    out = run_ort(after, {"x": np.arange(10, dtype=np.uint8)[None]})
    assert out["x_sliced"].dtype == np.uint8 and out["m2"].dtype == np.bool_
    np.testing.assert_array_equal(out["x_sliced"], [[0, 2, 4, 6]])


def test_dtype_from_producer_without_value_info():
    """Shape inference gone (e.g. a plugin op): the dtype still comes from the producer chain."""
    import onnx_graphsurgeon as gs

    from candidates.passes.bool_slice import dtype_of

    graph = gs.import_onnx(_synthetic(False))
    for t in graph.tensors().values():
        if t.name in ("m", "m1"):
            t.dtype = None
    by_out = {n.outputs[0].name: n for n in graph.nodes}
    assert dtype_of(by_out["m1"].inputs[0]) == np.bool_
    assert dtype_of(by_out["m2"].inputs[0]) == np.bool_
    assert dtype_of(by_out["x_sliced"].inputs[0]) == np.uint8
