"""ONNX stand-ins for the plugin ops, so rewritten graphs can be checked in onnxruntime.

Each stand-in follows the plugin's documented computation and input layout (not
our rewrite's intent): CustomSkipLayerNormPluginDynamic v1 normalizes
input + skip (+ bias) over dim 2 of a [S, B, E, 1, 1] tensor with rsqrt(var) and no
epsilon; the 8.5 LayerNorm plugin normalizes from `axis` to the end with `epsilon`.
A stand-in refuses a node whose inputs break the plugin's layout rules.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

PLUGIN_DOMAIN = "trt.plugins"


def _attr(node: onnx.NodeProto, name: str):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return None


def _layernorm_nodes(prefix: str, x: str, out: str, gamma: str, beta: str, eps: str, axis: int) -> list:
    n = lambda op, ins, outs, **kw: helper.make_node(op, ins, outs, name=f"{prefix}/{op}_{outs[0]}", **kw)  # noqa: E731
    return [
        n("ReduceMean", [x], [f"{prefix}_m"], axes=[axis]),
        n("Sub", [x, f"{prefix}_m"], [f"{prefix}_d"]),
        n("Mul", [f"{prefix}_d", f"{prefix}_d"], [f"{prefix}_d2"]),
        n("ReduceMean", [f"{prefix}_d2"], [f"{prefix}_v"], axes=[axis]),
        n("Add", [f"{prefix}_v", eps], [f"{prefix}_ve"]),
        n("Sqrt", [f"{prefix}_ve"], [f"{prefix}_s"]),
        n("Div", [f"{prefix}_d", f"{prefix}_s"], [f"{prefix}_n"]),
        n("Mul", [f"{prefix}_n", gamma], [f"{prefix}_g"]),
        n("Add", [f"{prefix}_g", beta], [out]),
    ]


def emulate_plugins(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` with every trt.plugins node replaced by equivalent standard ops."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    new_nodes, inits = [], []
    for i, node in enumerate(g.node):
        if node.domain != PLUGIN_DOMAIN:
            new_nodes.append(node)
            continue
        p = f"emu{i}"
        assert _attr(node, "plugin_version") in (b"1", "1"), "plugin_version must be the string '1'"
        if node.op_type == "CustomSkipLayerNormPluginDynamic":
            assert len(node.input) == 2 and len(node.output) == 1
            ld = _attr(node, "ld")
            assert _attr(node, "type_id") in (0, 1)
            beta = numpy_helper.to_array(_attr(node, "beta")).astype(np.float32)
            gamma = numpy_helper.to_array(_attr(node, "gamma")).astype(np.float32)
            assert beta.shape == gamma.shape == (ld,)
            shape5 = [ld, 1, 1]  # normalize over dim 2 of [S, B, E, 1, 1]: gamma broadcast as [E, 1, 1]
            inits += [numpy_helper.from_array(gamma.reshape(shape5), f"{p}_gamma"),
                      numpy_helper.from_array(beta.reshape(shape5), f"{p}_beta"),
                      numpy_helper.from_array(np.array(0.0, np.float32), f"{p}_eps")]
            new_nodes.append(helper.make_node("Add", [node.input[0], node.input[1]], [f"{p}_sum"]))
            x = f"{p}_sum"
            bias = _attr(node, "bias")
            if bias is not None:
                b = numpy_helper.to_array(bias).astype(np.float32)
                assert b.shape == (ld,)
                inits.append(numpy_helper.from_array(b.reshape(shape5), f"{p}_bias"))
                new_nodes.append(helper.make_node("Add", [x, f"{p}_bias"], [f"{p}_sumb"]))
                x = f"{p}_sumb"
            new_nodes += _layernorm_nodes(p, x, node.output[0], f"{p}_gamma", f"{p}_beta", f"{p}_eps", axis=2)
        elif node.op_type == "LayerNorm":
            assert len(node.input) == 3 and _attr(node, "axis") == -1
            inits.append(numpy_helper.from_array(np.array(_attr(node, "epsilon"), np.float32), f"{p}_eps"))
            new_nodes += _layernorm_nodes(p, node.input[0], node.output[0], node.input[1], node.input[2],
                                          f"{p}_eps", axis=-1)
        else:
            raise AssertionError(f"no stand-in for plugin {node.op_type}")
    del g.node[:]
    g.node.extend(new_nodes)
    g.initializer.extend(inits)
    del g.value_info[:]
    kept = [o for o in model.opset_import if o.domain != PLUGIN_DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    return model


def check_skip_layernorm_layout(model: onnx.ModelProto, shapes: dict[str, tuple]) -> None:
    """Every CustomSkipLayerNormPluginDynamic input is 5-D [S, B, ld, 1, 1], both inputs equal."""
    for node in model.graph.node:
        if node.op_type != "CustomSkipLayerNormPluginDynamic":
            continue
        ld = _attr(node, "ld")
        a, b = (shapes[t] for t in node.input)
        assert a == b, f"{node.name}: input shapes differ {a} vs {b}"
        assert len(a) == 5 and a[2] == ld and a[3] == 1 and a[4] == 1, f"{node.name}: layout {a}, ld {ld}"
