"""static_dims: shape-derived Reshape targets -> constants (0 / -1 where a dim must stay dynamic)."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from candidates.framework import register_pass
from candidates.dims import resolve_reshape_target
from candidates.graph import Namer, const_value, producer, scope_of
from candidates.shape_probe import ShapeProbe


@register_pass("static_dims")
def static_dims(graph: gs.Graph) -> int:
    """Make Reshape targets built from Shape->Gather->Concat constant wherever the value is known.

    The export spells every `view(b, -1, h, d_k)` / `view(b, t, c * f)` as Shape,
    Gather, Unsqueeze and Concat on the activations. Each target entry becomes a
    constant: a static dimension by its value (heads, head size, 256, 19*256), the
    Reshape input's own dynamic dimension at the same position by 0 (copy), and a
    single remaining dynamic entry by -1. TensorRT then sees constant reshape
    dimensions instead of shape tensors computed at run time (a measured conformer
    engine spent 16x longer in Myelin with a dynamic profile than with static
    shapes, partly in such shape arithmetic). Targets with two independent dynamic
    entries keep those entries. Sites: Reshapes whose target got more constant.
    """
    namer = Namer(graph, "static_dims")
    probe = ShapeProbe(graph)
    if not probe.ok:
        return 0
    sites = 0
    for node in [n for n in list(graph.nodes) if n.op == "Reshape"]:
        if const_value(node.inputs[1]) is not None:
            continue
        pieces = resolve_reshape_target(node, probe)
        if pieces is None:
            continue
        concat = producer(node.inputs[1])
        resolved = any(isinstance(p, int) and const_value(q) is None for p, q in zip(pieces, concat.inputs))
        if not resolved and not all(isinstance(p, int) for p in pieces):
            continue
        scope = scope_of([node])
        if all(isinstance(p, int) for p in pieces):
            node.inputs[1] = gs.Constant(namer.tensor(scope, "shape"), np.array(pieces, np.int64))
        else:
            parts = [gs.Constant(namer.tensor(scope, "dim"), np.array([p], np.int64)) if isinstance(p, int) else p
                     for p in pieces]
            out = gs.Variable(namer.tensor(scope, "shape"), dtype=np.int64, shape=[len(parts)])
            graph.nodes.append(gs.Node("Concat", namer.node(scope, "Concat"), {"axis": 0}, parts, [out]))
            node.inputs[1] = out
        sites += 1
    return sites
