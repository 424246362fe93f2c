"""subsampling_conv: the subsampling's Transpose/Reshape + MatMul(C*F -> D) as a Conv with a [1, F] kernel."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from candidates.dims import resolve_reshape_target
from candidates.shape_probe import ShapeProbe
from candidates.framework import register_pass
from candidates.graph import Builder, Namer, const_value, only_consumer, producer, replace_uses, scope_of, \
    split_const


def match_subsampling_linear(matmul: gs.Node, probe: ShapeProbe | None) -> dict | None:
    """x[B,C,T,F] -> Transpose(0,2,1,3) -> Reshape([B,T,C*F]) -> MatMul(W[C*F,D]) [-> Add(b[D])]."""
    if matmul.op != "MatMul":
        return None
    w = const_value(matmul.inputs[1])
    if w is None or w.ndim != 2 or const_value(matmul.inputs[0]) is not None:
        return None
    reshape = producer(matmul.inputs[0], "Reshape")
    if reshape is None or len(reshape.outputs[0].outputs) != 1:
        return None
    transpose = producer(reshape.inputs[0], "Transpose")
    if transpose is None or list(transpose.attrs.get("perm", [])) != [0, 2, 1, 3]:
        return None
    if len(transpose.outputs[0].outputs) != 1:
        return None
    x = transpose.inputs[0]
    # the convolution stack's output (Conv, optionally through its activation), not any 4-D tensor
    act = producer(x, ("Relu", "Sigmoid", "Mul", "Clip"))
    if producer(x, "Conv") is None and (act is None or producer(act.inputs[0], "Conv") is None):
        return None
    shape = probe.shape(x) if probe is not None and probe.ok else x.shape
    if shape is None or len(shape) != 4:
        return None
    c, f = shape[1], shape[3]
    if not (isinstance(c, int) and isinstance(f, int)) or c * f != w.shape[0]:
        return None
    # The flatten must keep B and T and merge C, F: target [0|-1, 0|-1, C*F] relative to [B, T, C, F]
    # (one -1 at most), whether written as constants or as the export's shape arithmetic.
    target = resolve_reshape_target(reshape, probe)
    if target is None or len(target) != 3 or target[2] != c * f:
        return None
    if not (target[0] == 0 and target[1] in (0, -1)) and not (target[0] == -1 and target[1] == 0):
        return None
    nodes, out, bias = [transpose, reshape, matmul], matmul.outputs[0], None
    add = only_consumer(out, "Add")
    if add is not None:
        t, b = split_const(add)
        if t is out and b is not None and b.size == w.shape[1] and b.shape[-1] == w.shape[1]:
            bias, out = b.reshape(-1), add.outputs[0]
            nodes.append(add)
    return {"x": x, "w": w, "c": c, "f": f, "bias": bias, "out": out, "nodes": nodes}


@register_pass("subsampling_conv", models=("encoder",))
def subsampling_conv(graph: gs.Graph) -> int:
    """Turn the subsampling output projection into a Conv with a [1, F] kernel (F = 19 frequency bins).

    After the two stride-2 convolutions the export transposes [B, C, T, F] to
    [B, T, C, F], flattens to [B, T, C*F] (4864 features at d_model 256) and
    multiplies by W [C*F, D]. The same sum is a Conv over the untransposed tensor
    with weight W reshaped to [D, C, 1, F] (plus the bias), followed by
    Squeeze(3) and Transpose(0, 2, 1): no 4864-wide reshape of the activations and a
    convolution TensorRT can fuse with the preceding ones, as the 2022 reference did.
    """
    namer = Namer(graph, "subsampling_conv")
    sites = 0
    probe = None
    for mm in [n for n in list(graph.nodes) if n.op == "MatMul"]:
        if const_value(mm.inputs[1]) is None or producer(mm.inputs[0], "Reshape") is None:
            continue
        probe = probe or ShapeProbe(graph)
        m = match_subsampling_linear(mm, probe)
        if m is None:
            continue
        c, f, w = m["c"], m["f"], m["w"]
        d = w.shape[1]
        kernel = np.ascontiguousarray(w.T.reshape(d, c, 1, f)).astype(w.dtype)
        b = Builder(graph, namer, scope_of(m["nodes"]))
        inputs = [m["x"], b.const("weight", kernel)]
        if m["bias"] is not None:
            inputs.append(b.const("bias", m["bias"].astype(w.dtype)))
        y = b.op("Conv", inputs, {"kernel_shape": [1, f], "strides": [1, 1], "pads": [0, 0, 0, 0],
                                  "dilations": [1, 1], "group": 1}, dtype=m["out"].dtype)
        y = b.op("Squeeze", [y, b.const("axes", np.array([3], np.int64))], dtype=m["out"].dtype)
        y = b.op("Transpose", [y], {"perm": [0, 2, 1]}, dtype=m["out"].dtype)
        replace_uses(graph, m["out"], y)
        sites += 1
    return sites
