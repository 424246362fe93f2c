"""ffn_2d_matmul: feed-forward MatMul chains on [B*T, d] instead of [B, T, d]."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from candidates.framework import register_pass
from candidates.graph import Builder, Namer, const_value, match_linear, only_consumer, producer, replace_uses, \
    scope_of


def _linear(matmul: gs.Node | None) -> tuple[gs.Node, gs.Node, gs.Tensor] | None:
    """A Linear (MatMul + bias Add): (matmul, add, out)."""
    found = match_linear(matmul)
    return None if found is None else (matmul, found[0], found[0].outputs[0])


def _activation(h: gs.Tensor) -> tuple[list[gs.Node], gs.Tensor] | None:
    """Relu(h) or Swish h * Sigmoid(h): (nodes, output)."""
    readers = h.outputs
    if len(readers) == 1 and readers[0].op == "Relu":
        return [readers[0]], readers[0].outputs[0]
    if len(readers) == 2 and {r.op for r in readers} == {"Sigmoid", "Mul"}:
        sig = next(r for r in readers if r.op == "Sigmoid")
        mul = next(r for r in readers if r.op == "Mul")
        if set(id(t) for t in mul.inputs) == {id(h), id(sig.outputs[0])} and only_consumer(sig.outputs[0]) is mul:
            return [sig, mul], mul.outputs[0]
    return None


def _rank(t: gs.Tensor) -> int | None:
    if t.shape is not None:
        return len(t.shape)
    r = producer(t, "Reshape")
    target = const_value(r.inputs[1]) if r is not None else None
    return None if target is None else int(target.size)


def match_ffn(matmul: gs.Node) -> dict | None:
    """x[..., d] (rank >= 3) -> Linear -> Relu|Swish -> Linear."""
    first = _linear(matmul)
    if first is None:
        return None
    x = matmul.inputs[0]
    rank = _rank(x)  # unknown rank: flatten anyway ([-1, d] is a no-op on 2-D input)
    if rank is not None and rank < 3:
        return None
    act = _activation(first[2])
    if act is None:
        return None
    second = _linear(only_consumer(act[1], "MatMul"))
    if second is None or second[0].inputs[0] is not act[1]:
        return None
    d_in = const_value(matmul.inputs[1]).shape[0]
    d_out = const_value(second[0].inputs[1]).shape[1]
    nodes = [first[0], first[1], *act[0], second[0], second[1]]
    return {"x": x, "first": first[0], "out": second[2], "d_in": d_in, "d_out": d_out, "nodes": nodes,
            "inner": [first[0].outputs[0], first[2], act[1], second[0].outputs[0]] + [n.outputs[0] for n in act[0]]}


@register_pass("ffn_2d_matmul")
def ffn_2d_matmul(graph: gs.Graph) -> int:
    """Reshape to [B*T, d] around each feed-forward Linear-activation-Linear chain.

    The feed-forward blocks (encoder: Swish = x*Sigmoid(x), macaron and plain;
    decoder: Relu) multiply rank-3 activations by 2-D weights. Flattening to
    [B*T, d] first makes them plain GEMMs with the bias and activation as epilogues,
    as the 2022 reference did; the result is reshaped back to the input's leading
    dims (Reshape with [-1, d] in, Shape(x)[:-1] ++ [d_out] out: dynamic B and T stay).
    """
    namer = Namer(graph, "ffn_2d_matmul")
    sites = 0
    for mm in [n for n in list(graph.nodes) if n.op == "MatMul"]:
        m = match_ffn(mm)
        if m is None:
            continue
        b = Builder(graph, namer, scope_of(m["nodes"]))
        x = m["x"]
        x2 = b.op("Reshape", [x, b.const("flat", np.array([-1, m["d_in"]], np.int64))], dtype=x.dtype)
        m["first"].inputs[0] = x2
        for t in m["inner"]:
            t.shape = None  # now 2-D; shape inference re-derives it
        lead = b.op("Slice", [b.op("Shape", [x], dtype=np.int64), b.const("start", np.array([0], np.int64)),
                              b.const("end", np.array([-1], np.int64))], dtype=np.int64)
        shape = b.op("Concat", [lead, b.const("width", np.array([m["d_out"]], np.int64))], {"axis": 0},
                     dtype=np.int64)
        out = m["out"]
        out.shape = None
        y = b.op("Reshape", [out, shape], dtype=out.dtype)
        replace_uses(graph, out, y)
        # replace_uses also rewired the Reshape's own input; point it back at the 2-D result
        y_node = producer(y)
        y_node.inputs[0] = out
        sites += 1
    return sites
