"""Finding LayerNorms in either form: the decomposed opset-13 chain or a LayerNormalization node."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from candidates.graph import const_value
from candidates.passes.layernorm import match_layernorm


def _fused(node: gs.Node) -> dict | None:
    if node.op != "LayerNormalization" or node.attrs.get("axis", -1) != -1 or len(node.outputs) != 1 \
            or node.outputs[0] is None:
        return None
    gamma = const_value(node.inputs[1])
    beta = const_value(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2].name else None
    if gamma is None or gamma.ndim != 1 or (len(node.inputs) > 2 and node.inputs[2].name and beta is None):
        return None
    if beta is None:
        beta = np.zeros_like(gamma)
    return {"x": node.inputs[0], "out": node.outputs[0], "gamma": gamma.astype(np.float32),
            "beta": beta.astype(np.float32), "epsilon": float(node.attrs.get("epsilon", 1e-5)), "nodes": [node]}


def find_all_layernorms(graph: gs.Graph) -> list[dict]:
    """Every last-axis LayerNorm with constant gamma/beta: x, out, gamma, beta, epsilon, nodes."""
    found = []
    for node in list(graph.nodes):
        m = match_layernorm(node) if node.op == "ReduceMean" else _fused(node)
        if m is not None:
            found.append(m)
    return found
