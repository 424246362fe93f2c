"""ShapeProbe: shape arithmetic is judged by probing only where it depends on shapes alone."""
from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from onnx import TensorProto, helper

from candidates import apply_passes
from candidates.shape_probe import ShapeProbe
from ort_check import assert_same_outputs


def _reshape_model() -> onnx.ModelProto:
    """y = Reshape(x, [rows, -1]) with rows an input *value* and Reshape(x, [B, -1]) with B = Shape(x)[0]."""
    i64 = lambda name, v: helper.make_tensor(name, TensorProto.INT64, [len(v)], v)  # noqa: E731
    nodes = [
        helper.make_node("Concat", ["rows", "minus1"], ["target_v"], axis=0),
        helper.make_node("Reshape", ["x", "target_v"], ["y_value"]),
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["b"], axis=0),
        helper.make_node("Concat", ["b", "minus1"], ["target_s"], axis=0),
        helper.make_node("Reshape", ["x", "target_s"], ["y_shape"]),
    ]
    graph = helper.make_graph(
        nodes, "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", 4]),
         helper.make_tensor_value_info("rows", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("y_value", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("y_shape", TensorProto.FLOAT, None)],
        [i64("minus1", [-1]), i64("zero", [0])])
    graph.output[0].type.tensor_type.shape.dim.add().dim_param = "R"
    graph.output[0].type.tensor_type.shape.dim.add().dim_param = "C"
    graph.output[1].type.tensor_type.shape.dim.add().dim_param = "B"
    graph.output[1].type.tensor_type.shape.dim.add().dim_param = "C2"
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_probe_values_only_for_shape_arithmetic():
    graph = gs.import_onnx(_reshape_model())
    probe = ShapeProbe(graph)
    assert probe.ok
    t = graph.tensors()
    assert probe.values(t["target_v"]) is None          # depends on the value of `rows`
    b = probe.values(t["b"])
    assert b is not None and len({int(v.reshape(-1)[0]) for v in b}) > 1  # B differs between probes
    assert probe.rank(t["y_shape"]) == 2 and probe.shape(t["y_shape"])[0] is None


def test_value_dependent_reshape_is_left_alone():
    model = _reshape_model()
    out, sites = apply_passes(model, ["fold_constants", "static_dims"])
    rng = np.random.default_rng(0)
    for rows in (1, 2, 6):
        feeds = {"x": rng.standard_normal((3, 4, 4)).astype(np.float32), "rows": np.array([rows], np.int64)}
        assert_same_outputs(model, out, feeds)
    # the shape-derived target did become constant: [0, -1]
    reshapes = {n.output[0]: n for n in out.graph.node if n.op_type == "Reshape"}
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in out.graph.initializer}
    assert inits[reshapes["y_shape"].input[1]].tolist() == [0, -1]
    assert reshapes["y_value"].input[1] not in inits


def _mixed_model() -> onnx.ModelProto:
    """Float, bool and integer intermediates: z = Cast(Relu(x) > 0) * Relu(x), flattened by Shape arithmetic."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Greater", ["r", "zero_f"], ["m"]),
        helper.make_node("Cast", ["m"], ["mf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["mf", "r"], ["z3"]),
        helper.make_node("Shape", ["z3"], ["s"]),
        helper.make_node("Slice", ["s", "zero", "one"], ["b"]),
        helper.make_node("Concat", ["b", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["z3", "target"], ["z"]),
    ]
    i64 = lambda name, v: helper.make_tensor(name, TensorProto.INT64, [len(v)], v)  # noqa: E731
    graph = helper.make_graph(
        nodes, "mixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", 3])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        [helper.make_tensor("zero_f", TensorProto.FLOAT, [], [0.0]), i64("zero", [0]), i64("one", [1]),
         i64("minus1", [-1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_probe_shapes_match_a_run_that_returns_every_tensor():
    """The probe asks onnxruntime for the Shape of non-integer tensors only (not the tensors): the
    shapes must be those a run handing back every tensor sees, and integer values kept as before."""
    import onnxruntime as ort

    model = _mixed_model()
    graph = gs.import_onnx(model)
    probe = ShapeProbe(graph)
    assert probe.ok
    full = onnx.ModelProto()
    full.CopyFrom(model)
    wanted = ["r", "m", "mf", "z3", "s", "b", "target"]
    full.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in wanted)
    sess = ort.InferenceSession(full.SerializeToString(), providers=["CPUExecutionProvider"])
    t = graph.tensors()
    runs = [dict(zip([o.name for o in sess.get_outputs()], sess.run(None, probe._feeds(graph, i))))
            for i in range(len(probe.dims(t["x"])))]
    for name in wanted + ["z"]:
        assert probe.dims(t[name]) == [tuple(r[name].shape) for r in runs], name
    assert [v.tolist() for v in probe.values(t["b"])] == [r["b"].tolist() for r in runs]
    assert probe.values(t["r"]) is None           # a float tensor: its shape, never its values
