"""decoder_masks: padding and causal masks built once, by broadcasting, shared by every reader."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from candidates.framework import register_pass
from candidates.graph import dedup_nodes
from candidates.shape_probe import ShapeProbe

_BROADCASTING = {"GreaterOrEqual", "Greater", "LessOrEqual", "Less", "Equal", "And", "Or", "Xor",
                 "Add", "Sub", "Mul", "Div", "Where"}


def _broadcast(shapes: list[tuple[int, ...]]) -> tuple[int, ...] | None:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        return None


def drop_redundant_expands(graph: gs.Graph, probe: ShapeProbe) -> int:
    """Read x instead of Expand(x, shape) where the reader's broadcasting gives the same result.

    Checked per reader at every probe shape: the reader's output shape must equal
    the broadcast of its inputs with x in place of the Expand output; an Expand
    that changes nothing (output shape = input shape) is dropped for every reader.
    """
    dropped = 0
    for node in [n for n in list(graph.nodes) if n.op == "Expand"]:
        x, out = node.inputs[0], node.outputs[0]
        x_dims, out_dims = probe.dims(x), probe.dims(out)
        if x_dims is None or out_dims is None or out in graph.outputs or not probe.is_shape_only(node.inputs[1]):
            continue  # an Expand whose target depends on input values cannot be judged by probing
        identity = x_dims == out_dims
        rewired = 0
        for reader in list(out.outputs):
            ok = identity
            if not ok and reader.op in _BROADCASTING:
                got = probe.dims(reader.outputs[0])
                ins = [probe.dims(t) if t is not out else x_dims for t in reader.inputs]
                ok = got is not None and all(d is not None for d in ins) and all(
                    _broadcast([d[p] for d in ins]) == got[p] for p in range(len(got)))
            if ok:
                for i, t in enumerate(reader.inputs):
                    if t is out:
                        reader.inputs[i] = x
                rewired += 1
        if rewired and not out.outputs:
            dropped += 1
    return dropped


def _is_mask_arithmetic(node: gs.Node) -> bool:
    """Nodes producing only boolean or integer tensors: masks, lengths, indices, shapes."""
    for t in node.outputs:
        if t.dtype is None:
            return False
        kind = np.dtype(t.dtype).kind
        if kind not in "biu":
            return False
    return True


@register_pass("decoder_masks", models=("decoder",))
def decoder_masks(graph: gs.Graph) -> int:
    """Build each padding/causal mask once, by broadcasting, and share it.

    The decoder export builds `~make_pad_mask(lengths, T)` three times (memory
    mask, target padding mask inside the decoder, the scoring mask after it) and
    the causal `subsequent_mask`, each as Range -> Expand(B, T) -> compare -> Not,
    and every attention block re-derives its copy through Unsqueeze/Cast/Equal.
    This pass (1) drops Expands whose reader broadcasts to the same shape anyway
    (`arange(T)[None] >= lengths[:, None]` needs no explicit [B, T] copy), checked
    per reader with a ShapeProbe, and (2) merges identical boolean/integer
    subgraphs (same op, attributes and inputs, constants by value), so each
    distinct mask, length and index tensor is computed once. With fold_constants
    first, the causal mask of the fixed 63 target positions is a constant.
    Sites: Expands dropped plus nodes merged.
    """
    probe = ShapeProbe(graph)
    sites = drop_redundant_expands(graph, probe) if probe.ok else 0
    graph.cleanup()
    sites += dedup_nodes(graph, _is_mask_arithmetic)
    return sites
