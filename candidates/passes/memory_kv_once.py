"""memory_kv_once: cross-attention K/V projections on encoder_out before its beam repeat."""
from __future__ import annotations

import onnx_graphsurgeon as gs

from candidates.framework import register_pass
from candidates.graph import Builder, Namer, const_value, only_consumer, producer, replace_uses, scope_of, \
    split_const
from candidates.shape_probe import ShapeProbe

_REPEAT_OPS = ("Expand", "Tile", "Reshape")


def repeat_chain(t: gs.Tensor, probe: ShapeProbe) -> tuple[gs.Tensor, list[gs.Node]] | None:
    """t = Reshape/Tile/Expand(...(src)) copying whole rows of the last axis: (src, chain nodes from src)."""
    chain: list[gs.Node] = []
    while producer(t, _REPEAT_OPS) is not None:
        chain.append(producer(t))
        t = producer(t).inputs[0]
    if len(chain) < 2 or not any(n.op in ("Tile", "Expand") for n in chain):
        return None
    src = t
    width = probe.dim_values(src, -1)
    if width is None or len(set(width)) != 1:
        return None
    for node in chain:  # every step keeps the rows of the last axis intact
        if probe.dim_values(node.outputs[0], -1) != width:
            return None
        if node.op == "Tile":
            reps = const_value(node.inputs[1])
            if reps is None or int(reps.reshape(-1)[-1]) != 1:
                return None
    return src, list(reversed(chain))


def _linear(matmul: gs.Node, width: int):
    w = const_value(matmul.inputs[1])
    if w is None or w.ndim != 2 or w.shape != (width, width):
        return None
    nodes, out = [matmul], matmul.outputs[0]
    add = only_consumer(out, "Add")
    if add is not None:
        t, b = split_const(add)
        if t is out and b is not None and b.size == width:
            nodes.append(add)
            out = add.outputs[0]
    return nodes, out


@register_pass("memory_kv_once", models=("decoder",))
def memory_kv_once(graph: gs.Graph) -> int:
    """Project encoder_out to cross-attention keys/values once per utterance, then repeat for the beam.

    The decoder wrapper repeats encoder_out for the 10 hypotheses
    (`repeat(1, 10, 1).view(B*10, T, 256)`: Expand, Tile, Reshape) before the
    decoder, so every block's src_attn linear_k and linear_v multiply ten identical
    copies: 2 x blocks GEMMs of (B*10*T) x 256 x 256. A Linear acts on each row of
    the last axis and the repeat only copies whole rows, so Linear(repeat(x)) =
    repeat(Linear(x)) exactly: the rewrite computes the projections on [B, T, 256]
    and repeats their results (same Expand/Tile/Reshape parameters), a tenth of the
    FLOPs. Matched: a tensor built from a rank-3 source by Expand/Tile/Reshape that
    keep the last dim (checked with a ShapeProbe), read by MatMuls with square
    constant weights (optionally + bias). Sites: projections moved.
    """
    probe = ShapeProbe(graph)
    if not probe.ok:
        return 0
    namer = Namer(graph, "memory_kv_once")
    sites = 0
    for reshape in [n for n in list(graph.nodes) if n.op == "Reshape"]:
        mem = reshape.outputs[0]
        found = repeat_chain(mem, probe)
        if found is None:
            continue
        src, chain = found
        width = probe.dim_values(src, -1)[0]
        for reader in [r for r in list(mem.outputs) if r.op == "MatMul" and r.inputs[0] is mem]:
            lin = _linear(reader, width)
            if lin is None:
                continue
            nodes, out = lin
            b = Builder(graph, namer, scope_of(nodes))
            y = b.op("MatMul", [src, reader.inputs[1]], dtype=out.dtype)
            if len(nodes) == 2:
                bias = nodes[1].inputs[1] if nodes[1].inputs[0] is reader.outputs[0] else nodes[1].inputs[0]
                y = b.op("Add", [y, bias], dtype=out.dtype)
            for step in chain:
                y = b.op(step.op, [y] + list(step.inputs[1:]), dict(step.attrs), dtype=out.dtype)
            replace_uses(graph, out, y)
            sites += 1
    return sites
