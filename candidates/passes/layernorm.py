"""layernorm: the exporter's decomposed LayerNorm -> one LayerNormalization (opset 17)."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from candidates.framework import register_pass
from candidates.graph import Builder, Namer, const_value, is_scalar, only_consumer, replace_uses, scope_of, \
    split_const


def _last_axis(node: gs.Node, rank: int | None) -> bool:
    """A ReduceMean over the last axis only, keeping dims (axes as attribute, or input from opset 18)."""
    if node.attrs.get("keepdims", 1) != 1:
        return False
    axes = node.attrs.get("axes")
    if axes is None and len(node.inputs) > 1:
        value = const_value(node.inputs[1])
        axes = None if value is None else value.reshape(-1).tolist()
    if axes is None or len(axes) != 1:
        return False
    return axes[0] == -1 or (rank is not None and axes[0] == rank - 1)


def match_layernorm(mean: gs.Node) -> dict | None:
    """Match x -> ReduceMean -> Sub -> Pow(2) -> ReduceMean -> Add(eps) -> Sqrt -> Div [-> Mul(gamma)] [-> Add(beta)].

    Returns the parts, or None. Intermediate tensors may have no other readers.
    """
    if mean.op != "ReduceMean":
        return None
    x = mean.inputs[0]
    rank = len(x.shape) if x.shape is not None else None
    if not _last_axis(mean, rank):
        return None
    sub = only_consumer(mean.outputs[0], "Sub")
    if sub is None or sub.inputs[0] is not x or sub.inputs[1] is not mean.outputs[0]:
        return None
    d = sub.outputs[0]
    readers = {n.op: n for n in d.outputs}
    if len(d.outputs) != 2 or set(readers) != {"Pow", "Div"}:
        return None
    pow_, div = readers["Pow"], readers["Div"]
    if pow_.inputs[0] is not d or not is_scalar(pow_.inputs[1], 2.0) or div.inputs[0] is not d:
        return None
    var = only_consumer(pow_.outputs[0], "ReduceMean")
    if var is None or not _last_axis(var, rank):
        return None
    add_eps = only_consumer(var.outputs[0], "Add")
    if add_eps is None:
        return None
    v, eps = split_const(add_eps)
    if v is not var.outputs[0] or eps is None or eps.size != 1:
        return None
    sqrt = only_consumer(add_eps.outputs[0], "Sqrt")
    if sqrt is None or div.inputs[1] is not sqrt.outputs[0] or len(sqrt.outputs[0].outputs) != 1:
        return None
    nodes = [mean, sub, pow_, var, add_eps, sqrt, div]
    out, gamma, beta = div.outputs[0], None, None
    mul = only_consumer(out, "Mul")
    if mul is not None:
        t, g = split_const(mul)
        if t is out and g is not None and g.size > 1 and g.ndim >= 1 and g.size == g.shape[-1]:
            gamma, out = g.reshape(-1), mul.outputs[0]
            nodes.append(mul)
    add = only_consumer(out, "Add")
    if add is not None:
        t, b = split_const(add)
        if t is out and b is not None and b.size > 1 and b.size == b.shape[-1]:
            beta, out = b.reshape(-1), add.outputs[0]
            nodes.append(add)
    width = (gamma if gamma is not None else beta).size if (gamma is not None or beta is not None) else None
    if width is None:
        width = x.shape[-1] if x.shape is not None and isinstance(x.shape[-1], int) else None
    if width is None or (gamma is not None and gamma.size != width) or (beta is not None and beta.size != width):
        return None
    dtype = np.float32
    if gamma is None:
        gamma = np.ones(width, dtype)
    if beta is None:
        beta = np.zeros(width, dtype)
    return {"x": x, "out": out, "gamma": gamma.astype(dtype), "beta": beta.astype(dtype),
            "epsilon": float(eps.reshape(-1)[0]), "nodes": nodes}


def find_layernorms(graph: gs.Graph) -> list[dict]:
    return [m for m in (match_layernorm(n) for n in list(graph.nodes) if n.op == "ReduceMean") if m is not None]


@register_pass("layernorm", min_opset=17)
def layernorm(graph: gs.Graph) -> int:
    """Fuse the decomposed LayerNorm (ReduceMean-Sub-Pow-ReduceMean-Add-Sqrt-Div-Mul-Add) into LayerNormalization.

    The opset-13 export writes every nn.LayerNorm as nine elementwise/reduce ops;
    TensorRT 8.6's ONNX parser maps opset-17 LayerNormalization to one
    INormalizationLayer (fewer kernels, one place to pin FP32 under FP16). Needs
    opset 17 (the framework relabels 13 -> 17). Matches by structure, last-axis
    reductions, Pow exponent 2; epsilon, gamma and beta are read from the constants.
    A model exported at opset 17 already has LayerNormalization: 0 sites.
    """
    namer = Namer(graph, "layernorm")
    sites = 0
    fused: dict[int, gs.Tensor] = {}   # id(old output) -> LayerNormalization output
    for m in find_layernorms(graph):
        # a LayerNorm reading another one's output (all matched up front) reads the fused output
        x = fused.get(id(m["x"]), m["x"])
        b = Builder(graph, namer, scope_of(m["nodes"]))
        gamma = b.const("gamma", m["gamma"])
        beta = b.const("beta", m["beta"])
        y = b.op("LayerNormalization", [x, gamma, beta], {"axis": -1, "epsilon": m["epsilon"]},
                 dtype=m["out"].dtype)
        replace_uses(graph, m["out"], y)
        fused[id(m["out"])] = y
        sites += 1
    return sites
