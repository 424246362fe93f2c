"""Plugin rewrites on CPU: structure, attributes, layouts, and semantics through ONNX stand-ins."""
from __future__ import annotations

import onnx
import pytest
from onnx import helper, numpy_helper

from candidates import PassError, apply_passes, available_passes
from emulate import PLUGIN_DOMAIN, check_skip_layernorm_layout, emulate_plugins
from ort_check import assert_same_outputs, run_ort
from plugins import apply_plugins, available_plugins, required_creators, usable_plugins
from wenet_models import STYLES

SKIP_LN = ("skip_layernorm_plugin", "skip_layernorm_plugin_fp16")
OURS = ("wenet_layernorm_plugin", "wenet_log_softmax_plugin")   # plugins/src, tests in test_wenet_plugins.py


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: a for a in node.attribute}


def _plugin_nodes(model: onnx.ModelProto, op: str) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type == op]


def test_registry():
    assert set(available_plugins()) == {"layernorm_plugin", *SKIP_LN, *OURS}
    assert required_creators(["skip_layernorm_plugin", "skip_layernorm_plugin_fp16"]) == \
        [("CustomSkipLayerNormPluginDynamic", "1")]
    assert required_creators(["layernorm_plugin"]) == [("LayerNorm", "1")]
    # TensorRT 8.6's registry has the skip-LayerNorm creator but no LayerNorm one
    trt86 = [("CustomSkipLayerNormPluginDynamic", "1"), ("CustomQKVToContextPluginDynamic", "1")]
    assert usable_plugins(trt86) == list(SKIP_LN)
    with pytest.raises(PassError, match="unknown plugin 'fmha'"):
        required_creators(["fmha"])
    # plugin rewrites are not graph passes and vice versa
    assert not set(available_plugins()) & set(available_passes())
    with pytest.raises(PassError, match="unknown pass"):
        apply_passes(onnx.ModelProto(), ["skip_layernorm_plugin"])


@pytest.mark.parametrize("name", SKIP_LN)
@pytest.mark.parametrize("model", ["encoder", "decoder"])
@pytest.mark.parametrize("style", STYLES)
def test_skip_layernorm_plugin(plugin_workloads, name, model, style):
    type_id = 1 if name.endswith("fp16") else 0
    for wl in plugin_workloads:
        before = wl.load(style, model)
        after, sites = apply_plugins(before, [name], model_name=model)
        n = sites[name]
        assert n > 0
        if wl.source == "mini":  # residual Adds feeding a LayerNorm: 4 per conformer block; 3 per decoder block - 1 + 1
            assert n == (8 if model == "encoder" else 6)
        assert apply_plugins(after, [name])[1][name] == 0
        onnx.checker.check_model(after)
        nodes = _plugin_nodes(after, "CustomSkipLayerNormPluginDynamic")
        assert len(nodes) == n
        assert {o.domain for o in after.opset_import} >= {PLUGIN_DOMAIN}
        producers = {o: nd for nd in after.graph.node for o in nd.output}
        readers = {}
        for nd in after.graph.node:
            for i in nd.input:
                readers.setdefault(i, []).append(nd)
        for node in nodes:
            a = _attrs(node)
            assert node.domain == PLUGIN_DOMAIN
            assert a["plugin_version"].type == onnx.AttributeProto.STRING and a["plugin_version"].s == b"1"
            assert a["type_id"].type == onnx.AttributeProto.INT and a["type_id"].i == type_id
            assert a["ld"].type == onnx.AttributeProto.INT
            for field in ("beta", "gamma", "bias"):
                if field not in a:
                    assert field == "bias"
                    continue
                assert a[field].type == onnx.AttributeProto.TENSOR
                assert a[field].t.data_type == onnx.TensorProto.FLOAT     # -> PluginFieldType kFLOAT32
                assert list(a[field].t.dims) == [a["ld"].i]
            # 5-D in, 5-D out: Unsqueeze before, Squeeze after, same axes
            for inp in node.input:
                assert producers[inp].op_type == "Unsqueeze"
            (out_reader,) = readers[node.output[0]]
            assert out_reader.op_type == "Squeeze"
        # the plugin inputs' real shapes: run the stand-in graph with them as outputs
        emu = emulate_plugins(after)
        wanted = [i for nd in nodes for i in nd.input]
        emu.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in wanted)
        feeds = wl.make_inputs(model, 3, wl.shapes[-1][1], 3)
        shapes = {k: v.shape for k, v in run_ort(emu, feeds).items()}
        check_skip_layernorm_layout(after, shapes)


@pytest.mark.parametrize("name", ["skip_layernorm_plugin", "layernorm_plugin"])
@pytest.mark.parametrize("model", ["encoder", "decoder"])
def test_plugin_semantics_through_stand_ins(plugin_workloads, name, model):
    """With each plugin node replaced by its documented computation, the outputs match the original."""
    for wl in plugin_workloads:
        before = wl.load("contest", model)
        after, sites = apply_plugins(before, [name])
        assert sites[name] > 0
        emu = emulate_plugins(after)
        for i, (batch, frames) in enumerate(wl.shapes):
            # the skip-LN kernel has no epsilon: ~eps/(2 var) relative difference
            assert_same_outputs(before, emu, wl.make_inputs(model, batch, frames, 41 + i), atol=1e-4, rtol=1e-4)


def test_plugins_after_all_passes(plugin_workloads):
    for wl in plugin_workloads:
        for model in ("encoder", "decoder"):
            before = wl.load("contest", model)
            passed, _ = apply_passes(before, available_passes(model))
            after, sites = apply_plugins(passed, ["skip_layernorm_plugin"])
            assert sites["skip_layernorm_plugin"] > 0
            assert_same_outputs(before, emulate_plugins(after), wl.make_inputs(model, 3, wl.shapes[-1][1], 5),
                                atol=1e-4, rtol=1e-4)


def test_layernorm_plugin_structure(plugin_workloads):
    wl = plugin_workloads[0]
    for style in STYLES:
        after, sites = apply_plugins(wl.load(style, "encoder"), ["layernorm_plugin"])
        nodes = _plugin_nodes(after, "LayerNorm")
        assert len(nodes) == sites["layernorm_plugin"] > 0
        inits = {i.name: i for i in after.graph.initializer}
        for node in nodes:
            a = _attrs(node)
            assert a["epsilon"].type == onnx.AttributeProto.FLOAT and 0 < a["epsilon"].f < 1e-3
            assert a["axis"].type == onnx.AttributeProto.INT and a["axis"].i == -1
            gamma, beta = (numpy_helper.to_array(inits[t]) for t in node.input[1:])
            assert gamma.ndim == beta.ndim == 1 and gamma.shape == beta.shape
        assert not any(n.op_type in ("ReduceMean", "LayerNormalization") for n in after.graph.node)


def test_disabled_plugins_change_nothing(plugin_workloads):
    wl = plugin_workloads[0]
    model = wl.load("contest", "encoder")
    same, sites = apply_plugins(model, [])
    assert sites == {} and same.SerializeToString() == model.SerializeToString()
    passed, _ = apply_passes(model, available_passes("encoder"))
    assert not any(n.domain == PLUGIN_DOMAIN for n in passed.graph.node)


def test_plugin_rewrite_is_rejected_for_unknown_model():
    with pytest.raises(PassError, match="unknown plugin"):
        apply_plugins(onnx.ModelProto(), ["CustomQKVToContextPluginDynamic"])
