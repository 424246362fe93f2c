"""ONNX stand-ins for the plugin ops, so rewritten graphs can be checked in onnxruntime.

Each stand-in follows the plugin's documented computation and input layout (not
our rewrite's intent): CustomSkipLayerNormPluginDynamic v1 normalizes
input + skip (+ bias) over dim 2 of a [S, B, E, 1, 1] tensor with rsqrt(var) and no
epsilon; the 8.5 LayerNorm plugin normalizes from `axis` to the end with `epsilon`; our
WenetLayerNorm (plugins/src/layernorm.cu) adds the residual input first when `residual` = 1,
normalizes over the last axis with `epsilon` and, when `output_sum` = 1, outputs the sum too;
our WenetLogSoftmax is LogSoftmax over the last axis.
A stand-in refuses a node whose inputs break the plugin's layout rules.

`reference_layernorm` / `reference_log_softmax` are numpy versions of our two kernels' math
(FP32 arithmetic, inputs and outputs rounded to the I/O type), for the GPU tests to compare
plugin engines with and for the CPU tests to tie the stand-ins to.
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
        elif node.op_type == "WenetLayerNorm":
            residual, output_sum = _attr(node, "residual"), _attr(node, "output_sum")
            assert residual in (0, 1) and output_sum in (0, 1) and (residual or not output_sum)
            assert len(node.input) == 1 + residual and len(node.output) == 1 + output_sum
            gamma = numpy_helper.to_array(_attr(node, "gamma")).astype(np.float32)
            beta = numpy_helper.to_array(_attr(node, "beta")).astype(np.float32)
            assert gamma.shape == beta.shape and gamma.ndim == 1 and 1 <= gamma.size <= 1024
            inits += [numpy_helper.from_array(gamma, f"{p}_gamma"), numpy_helper.from_array(beta, f"{p}_beta"),
                      numpy_helper.from_array(np.array(_attr(node, "epsilon"), np.float32), f"{p}_eps")]
            x = node.input[0]
            if residual:
                new_nodes.append(helper.make_node("Add", [node.input[0], node.input[1]], [f"{p}_sum"]))
                x = f"{p}_sum"
            if output_sum:
                new_nodes.append(helper.make_node("Identity", [x], [node.output[1]]))
            new_nodes += _layernorm_nodes(p, x, node.output[0], f"{p}_gamma", f"{p}_beta", f"{p}_eps", axis=-1)
        elif node.op_type == "WenetLogSoftmax":
            assert len(node.input) == 1 and len(node.output) == 1
            assert {a.name for a in node.attribute} == {"plugin_version"}, "WenetLogSoftmax has no fields"
            new_nodes.append(helper.make_node("LogSoftmax", [node.input[0]], [node.output[0]], axis=-1))
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


def _io(x: np.ndarray, io_dtype) -> np.ndarray:
    """What the kernel reads: the tensor in its I/O type, widened to float32."""
    return np.asarray(x).astype(io_dtype).astype(np.float32)


def reference_layernorm(x, gamma, beta, epsilon: float, residual=None, io_dtype=np.float32):
    """WenetLayerNorm's math: (y, sum) with sum = x + residual (None without residual), both in io_dtype."""
    v = _io(x, io_dtype)
    if residual is not None:
        v = v + _io(residual, io_dtype)
    mean = v.mean(-1, keepdims=True, dtype=np.float32)
    d = v - mean
    var = (d * d).mean(-1, keepdims=True, dtype=np.float32)
    y = d / np.sqrt(var + np.float32(epsilon)) * np.asarray(gamma, np.float32) + np.asarray(beta, np.float32)
    return y.astype(io_dtype), (v.astype(io_dtype) if residual is not None else None)


def reference_log_softmax(x, io_dtype=np.float32) -> np.ndarray:
    """WenetLogSoftmax's math: (x - max) - log(sum(exp(x - max))) over the last axis, in io_dtype."""
    v = _io(x, io_dtype)
    shifted = v - v.max(-1, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(-1, keepdims=True, dtype=np.float32))).astype(io_dtype)
