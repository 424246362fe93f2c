"""merge_qkv: the Q, K and V projections of one input as one MatMul [d, 3d] + Split."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from candidates.framework import register_pass
from candidates.graph import Builder, Namer, match_linear, replace_uses, scope_of


def _projection(matmul: gs.Node) -> dict | None:
    """MatMul(x, W[d, n]) -> Add(b[n]) -> Reshape (the head split of an attention projection)."""
    found = match_linear(matmul)
    if found is None:
        return None
    add, w, bias = found
    if not add.outputs[0].outputs or any(r.op != "Reshape" for r in add.outputs[0].outputs):
        return None
    return {"matmul": matmul, "add": add, "w": w, "b": bias.reshape(-1), "out": add.outputs[0]}


def find_qkv_groups(graph: gs.Graph) -> list[tuple[gs.Tensor, list[dict]]]:
    """Inputs read by exactly three projection MatMuls of equal weight shape (self-attention Q, K, V)."""
    groups = []
    for x in {id(t): t for n in graph.nodes if n.op == "MatMul" for t in n.inputs[:1]}.values():
        matmuls = [n for n in x.outputs if n.op == "MatMul" and n.inputs[0] is x]
        if len(matmuls) != 3:
            continue
        projs = [_projection(n) for n in matmuls]
        if any(p is None for p in projs) or len({p["w"].shape for p in projs}) != 1:
            continue
        groups.append((x, projs))
    return groups


@register_pass("merge_qkv")
def merge_qkv(graph: gs.Graph) -> int:
    """Merge the three projections (Q, K, V) of a self-attention input into one MatMul + Add + Split.

    One GEMM with N = 3d instead of three with N = d reads the activations once and
    fills the GPU better at small batch. Matched as: a tensor read by exactly three
    MatMuls with constant [d, d] weights, each followed by a constant-bias Add whose
    readers are Reshapes (the head split). Cross-attention (K and V from the encoder
    memory, shared by every decoder block) and the bias-free relative-position
    projection do not match. Exact up to float summation order.
    """
    namer = Namer(graph, "merge_qkv")
    sites = 0
    for x, projs in find_qkv_groups(graph):
        nodes = [n for p in projs for n in (p["matmul"], p["add"])]
        b = Builder(graph, namer, scope_of(nodes))
        w = np.concatenate([p["w"] for p in projs], axis=1)
        bias = np.concatenate([p["b"] for p in projs]).astype(w.dtype)
        y = b.op("MatMul", [x, b.const("weight", w)], dtype=x.dtype)
        y = b.op("Add", [y, b.const("bias", bias)], dtype=x.dtype)
        widths = np.array([p["w"].shape[1] for p in projs], np.int64)
        outs = b.op("Split", [y, b.const("split", widths)], {"axis": -1}, n_out=3, dtype=x.dtype)
        for p, o in zip(projs, outs):
            replace_uses(graph, p["out"], o)
        sites += 1
    return sites
