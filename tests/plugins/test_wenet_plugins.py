"""Our plugin rewrites (plugins/wenet_plugins.py) on CPU: structure, attributes, idempotence, and the
rewritten graphs' outputs with each plugin node replaced by its computation (emulate.py)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from candidates import PassError, apply_passes, available_passes
from emulate import PLUGIN_DOMAIN, emulate_plugins, reference_layernorm, reference_log_softmax
from ort_check import assert_same_outputs, run_ort
from plugins import apply_plugins, available_plugins, required_creators, usable_plugins
from wenet_models import STYLES

LN, LSM = "wenet_layernorm_plugin", "wenet_log_softmax_plugin"
CREATORS = [("WenetLayerNorm", "1"), ("WenetLogSoftmax", "1")]


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _types(node: onnx.NodeProto) -> dict:
    return {a.name: a.type for a in node.attribute}


def _outputs(model: onnx.ModelProto) -> list:
    return [(o.name, o.type.SerializeToString()) for o in model.graph.output]


def test_registry():
    assert LN in available_plugins("encoder") and LN in available_plugins("decoder")
    assert LSM in available_plugins("decoder") and LSM not in available_plugins("encoder")
    assert required_creators([LN, LSM]) == CREATORS
    assert usable_plugins(CREATORS, "decoder") == [LN, LSM]
    assert usable_plugins([("CustomSkipLayerNormPluginDynamic", "1")], "decoder") == \
        ["skip_layernorm_plugin", "skip_layernorm_plugin_fp16"]
    with pytest.raises(PassError, match="not encoder"):
        apply_plugins(onnx.ModelProto(), [LSM], model_name="encoder")


@pytest.mark.parametrize("model", ["encoder", "decoder"])
@pytest.mark.parametrize("style", STYLES)
def test_layernorm_structure(plugin_workloads, model, style):
    for wl in plugin_workloads:
        before = wl.load(style, model)
        after, sites = apply_plugins(before, [LN], model_name=model)
        n = sites[LN]
        onnx.checker.check_model(after)
        nodes = [nd for nd in after.graph.node if nd.op_type == "WenetLayerNorm"]
        assert len(nodes) == n > 0
        # every LayerNorm went: 5 per conformer block + the final one; 3 per decoder block + 1
        assert not any(nd.op_type in ("ReduceMean", "LayerNormalization") for nd in after.graph.node)
        fused = [nd for nd in nodes if _attrs(nd)["residual"] == 1]
        if wl.source == "mini":   # 2 blocks; the residual Adds are those skip_layernorm_plugin finds (8 / 6)
            assert (n, len(fused)) == ((11, 8) if model == "encoder" else (7, 6))
        assert _outputs(after) == _outputs(before)
        assert [i.name for i in after.graph.input] == [i.name for i in before.graph.input]
        inits = {i.name for i in after.graph.initializer}
        for nd in nodes:
            a, t = _attrs(nd), _types(nd)
            assert nd.domain == PLUGIN_DOMAIN and a["plugin_version"] == b"1"
            assert t["plugin_version"] == onnx.AttributeProto.STRING
            assert t["epsilon"] == onnx.AttributeProto.FLOAT and 0 < a["epsilon"] < 1e-3
            assert t["gamma"] == t["beta"] == onnx.AttributeProto.TENSOR            # -> kFLOAT32 fields
            assert a["gamma"].data_type == a["beta"].data_type == TensorProto.FLOAT
            assert list(a["gamma"].dims) == list(a["beta"].dims) and len(a["gamma"].dims) == 1
            assert t["residual"] == t["output_sum"] == onnx.AttributeProto.INT
            assert len(nd.input) == 1 + a["residual"] and len(nd.output) == 1 + a["output_sum"]
            assert a["residual"] or not a["output_sum"]
            assert not inits & set(nd.input)   # activations only: gamma/beta travel as fields
        assert apply_plugins(after, [LN])[1][LN] == 0      # idempotent
        # the real shapes of the plugin inputs: [..., E], residual identical to x
        emu = emulate_plugins(after)
        wanted = sorted({i for nd in nodes for i in nd.input})
        emu.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in wanted)
        batch, frames = wl.shapes[-1]
        shapes = {k: v.shape for k, v in run_ort(emu, wl.make_inputs(model, batch, frames, 3)).items()}
        for nd in nodes:
            dims = [shapes[i] for i in nd.input]
            assert all(d == dims[0] for d in dims) and dims[0][-1] == _attrs(nd)["gamma"].dims[0], nd.name


@pytest.mark.parametrize("model", ["encoder", "decoder"])
@pytest.mark.parametrize("style", STYLES)
def test_semantics_through_stand_ins(plugin_workloads, model, style):
    """Rewritten graph with each plugin node computed by standard ops == the original, every shape."""
    names = [LN, LSM] if model == "decoder" else [LN]
    for wl in plugin_workloads:
        before = wl.load(style, model)
        after, sites = apply_plugins(before, names)
        assert all(sites.values())
        emu = emulate_plugins(after)
        for i, (batch, frames) in enumerate(wl.shapes):   # one row, and a padded batch
            assert_same_outputs(before, emu, wl.make_inputs(model, batch, frames, 61 + i), atol=1e-5, rtol=1e-5)


def test_after_all_passes_and_with_the_library_plugins(plugin_workloads):
    for wl in plugin_workloads:
        for model in ("encoder", "decoder"):
            before = wl.load("contest", model)
            passed, _ = apply_passes(before, available_passes(model))
            names = [LN, LSM] if model == "decoder" else [LN]
            after, sites = apply_plugins(passed, names + ["skip_layernorm_plugin"])
            assert sites[LN] > 0 and sites["skip_layernorm_plugin"] == 0   # ours took every LayerNorm
            assert_same_outputs(before, emulate_plugins(after), wl.make_inputs(model, 3, wl.shapes[-1][1], 5),
                                atol=1e-4, rtol=1e-4)


def test_log_softmax_structure(plugin_workloads):
    for wl in plugin_workloads:
        for style in STYLES:
            before = wl.load(style, "decoder")
            lsm_in = next(n.input[0] for n in before.graph.node if n.op_type == "LogSoftmax")
            after, sites = apply_plugins(before, [LSM], model_name="decoder")
            assert sites[LSM] == 1 and not any(n.op_type == "LogSoftmax" for n in after.graph.node)
            (node,) = [n for n in after.graph.node if n.op_type == "WenetLogSoftmax"]
            assert node.domain == PLUGIN_DOMAIN and _attrs(node) == {"plugin_version": b"1"}
            assert list(node.input) == [lsm_in]
            assert _outputs(after) == _outputs(before)
            assert apply_plugins(after, [LSM])[1][LSM] == 0


# --- small graphs: where the rewrites must not apply ----------------------------------------
def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def _ln_model(b_shape, width=16, sum_is_output=False):
    """LayerNormalization(a + b) -> Relu, optionally with the sum a graph output too."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "gamma", "beta"], ["n"], axis=-1, epsilon=1e-5),
             helper.make_node("Relu", ["n"], ["y"])]
    outputs = [_vi("y", ["B", "T", width])] + ([_vi("s", ["B", "T", width])] if sum_is_output else [])
    inits = [numpy_helper.from_array((1 + 0.1 * rng.standard_normal(width)).astype(np.float32), "gamma"),
             numpy_helper.from_array((0.1 * rng.standard_normal(width)).astype(np.float32), "beta")]
    return _model(nodes, [_vi("a", ["B", "T", width]), _vi("b", b_shape)], outputs, inits)


def _feeds(model, seed=0):
    rng = np.random.default_rng(seed)
    dims = {"B": 2, "T": 5}
    return {i.name: rng.standard_normal([dims.get(d.dim_param, d.dim_value) for d in i.type.tensor_type.shape.dim])
            .astype(np.float32) for i in model.graph.input}


def test_layernorm_residual_cases():
    same = _ln_model(["B", "T", 16])
    after, _ = apply_plugins(same, [LN])
    (node,) = [n for n in after.graph.node if n.op_type == "WenetLayerNorm"]
    assert (_attrs(node)["residual"], _attrs(node)["output_sum"], list(node.input)) == (1, 0, ["a", "b"])
    assert not any(n.op_type == "Add" for n in after.graph.node)
    assert_same_outputs(same, emulate_plugins(after), _feeds(same))

    shared = _ln_model(["B", "T", 16], sum_is_output=True)   # the sum is read elsewhere: second output
    after, _ = apply_plugins(shared, [LN])
    (node,) = [n for n in after.graph.node if n.op_type == "WenetLayerNorm"]
    assert _attrs(node)["output_sum"] == 1 and node.output[1] == "s" and _outputs(after) == _outputs(shared)
    assert_same_outputs(shared, emulate_plugins(after), _feeds(shared))

    broadcast = _ln_model([1, 1, 16])   # a + b broadcasts: the Add stays, the plugin normalizes its sum
    after, _ = apply_plugins(broadcast, [LN])
    (node,) = [n for n in after.graph.node if n.op_type == "WenetLayerNorm"]
    assert _attrs(node)["residual"] == 0 and any(n.op_type == "Add" for n in after.graph.node)
    assert_same_outputs(broadcast, emulate_plugins(after), _feeds(broadcast))

    wide = _ln_model(["B", "T", 1025], width=1025)   # wider than the kernel's 1024
    assert apply_plugins(wide, [LN])[1][LN] == 0


def test_log_softmax_axis_and_type_cases():
    def lsm(shape, dtype=TensorProto.FLOAT, opset=17, **attrs):
        return _model([helper.make_node("LogSoftmax", ["x"], ["y"], **attrs)], [_vi("x", shape, dtype)],
                      [_vi("y", shape, dtype)], opset=opset)
    assert apply_plugins(lsm(["B", 7, 9]), [LSM])[1][LSM] == 1                 # default axis -1
    assert apply_plugins(lsm(["B", 7, 9], axis=2), [LSM])[1][LSM] == 1         # rank - 1
    assert apply_plugins(lsm(["B", 7, 9], axis=1), [LSM])[1][LSM] == 0         # not the last axis
    assert apply_plugins(lsm([4, 9], opset=11), [LSM])[1][LSM] == 1            # opset < 13: default axis 1 = last
    assert apply_plugins(lsm([2, 4, 9], opset=11), [LSM])[1][LSM] == 0         # flattens from axis 1: no
    assert apply_plugins(lsm(["B", 9], TensorProto.DOUBLE), [LSM])[1][LSM] == 0
    model = lsm(["B", 7, 9])
    after, _ = apply_plugins(model, [LSM])
    assert_same_outputs(model, emulate_plugins(after), {"x": np.random.default_rng(1).standard_normal((3, 7, 9))
                                                         .astype(np.float32) * 20})


# --- the numpy references of the kernels' math ------------------------------------------------
def test_reference_layernorm_matches_the_stand_in():
    rng = np.random.default_rng(4)
    model = _ln_model(["B", "T", 16], sum_is_output=True)
    after, _ = apply_plugins(model, [LN])
    node = next(n for n in after.graph.node if n.op_type == "WenetLayerNorm")
    emu = emulate_plugins(after)
    emu.graph.output.append(helper.make_empty_tensor_value_info(node.output[0]))   # y, before the Relu
    feeds = {"a": (3 * rng.standard_normal((2, 5, 16)) + 1).astype(np.float32),
             "b": rng.standard_normal((2, 5, 16)).astype(np.float32)}
    out = run_ort(emu, feeds)
    gamma, beta = (numpy_helper.to_array(_attrs(node)[k]) for k in ("gamma", "beta"))
    y, s = reference_layernorm(feeds["a"], gamma, beta, 1e-5, residual=feeds["b"])
    np.testing.assert_allclose(out[node.output[0]], y, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out["s"], s)
    # FP16 I/O: the inputs and outputs are rounded, the arithmetic is not
    y16, s16 = reference_layernorm(feeds["a"], gamma, beta, 1e-5, residual=feeds["b"], io_dtype=np.float16)
    assert y16.dtype == s16.dtype == np.float16
    np.testing.assert_allclose(y16.astype(np.float32), y, rtol=2e-3, atol=4e-3)
    y1, none = reference_layernorm(feeds["a"], gamma, beta, 1e-5)
    assert none is None and y1.shape == feeds["a"].shape


def test_reference_log_softmax():
    x = np.random.default_rng(5).standard_normal((3, 4233)).astype(np.float32) * 8
    y = reference_log_softmax(x)
    np.testing.assert_allclose(np.exp(y.astype(np.float64)).sum(-1), 1.0, rtol=1e-5)
    model = _model([helper.make_node("LogSoftmax", ["x"], ["y"], axis=-1)], [_vi("x", ["N", 4233])],
                   [_vi("y", ["N", 4233])])
    np.testing.assert_allclose(run_ort(model, {"x": x})["y"], y, rtol=1e-5, atol=1e-4)
    y16 = reference_log_softmax(x, io_dtype=np.float16)
    assert y16.dtype == np.float16
    np.testing.assert_allclose(y16.astype(np.float32), y, rtol=1e-3, atol=1e-2)
