"""pos_enc_slice: trim the positional-encoding table and precompute what depends only on it."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from candidates.framework import register_pass
from candidates.graph import Builder, Namer, const_value, ints, only_consumer, replace_uses, scope_of
from workload.shapes import HYP_LEN, MAX_LEN, encoder_out_len

# Rows any test shape needs: encoder positions up to T' = encoder_out_len(MAX_LEN)
# (255), decoder positions up to HYP_LEN - 1 (63); rounded up to a multiple of 64.
# A longer input than the profile's maximum would make Slice return fewer rows and
# fail with a shape error in the following Add/MatMul (never a silent wrong result).
ROWS = -(-max(encoder_out_len(MAX_LEN), HYP_LEN) // 64) * 64


def _table_slice(node: gs.Node) -> dict | None:
    """Slice(table const [1, N, D] (or [N, D]), starts 0, ends dynamic, axes = the position axis, steps 1)."""
    if node.op != "Slice" or len(node.inputs) < 3:
        return None
    table = const_value(node.inputs[0])
    if table is None or table.ndim not in (2, 3) or table.dtype.kind != "f":
        return None
    pos_axis = table.ndim - 2
    if ints(node.inputs[1]) != [0] or const_value(node.inputs[2]) is not None:
        return None
    axes = ints(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3].name else [0]
    steps = ints(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4].name else [1]
    if axes not in ([pos_axis], [pos_axis - table.ndim]) or steps != [1]:
        return None
    return {"node": node, "table": table, "axis": pos_axis}


@register_pass("pos_enc_slice")
def pos_enc_slice(graph: gs.Graph) -> int:
    """Cut the positional-encoding table to the rows a test shape can use; fold its per-block projections.

    The export keeps WeNet's whole sinusoid table (5000 x 256) and slices the first T
    rows at run time. The rewrite (1) trims the table to ROWS = 256 rows (the longest
    encoder output, 255, or hypothesis, 63), as the 2022 reference did; (2) for each
    block whose relative-position projection reads the slice (MatMul with W_pos, then
    the head Reshape and Transpose), precomputes table @ W_pos, reshaped and
    transposed, as a constant and slices that instead: those three layers leave the
    run time graph. Sites: tables trimmed plus projections folded.
    """
    namer = Namer(graph, "pos_enc_slice")
    sites = 0
    for node in [n for n in list(graph.nodes) if n.op == "Slice"]:
        m = _table_slice(node)
        if m is None:
            continue
        table, axis = m["table"], m["axis"]
        if table.shape[axis] > ROWS:
            table = np.ascontiguousarray(np.take(table, np.arange(ROWS), axis=axis))
            node.inputs[0] = gs.Constant(namer.tensor(scope_of([node]), "table"), table)
            sites += 1
        out = node.outputs[0]
        for reader in list(out.outputs):
            folded = _fold_chain(reader, out, table, axis)
            if folded is None:
                continue
            value, new_axis, last, nodes = folded
            b = Builder(graph, namer, scope_of(nodes))
            sliced = b.op("Slice", [b.const("table", value), node.inputs[1], node.inputs[2],
                                    b.const("axes", np.array([new_axis], np.int64)),
                                    b.const("steps", np.array([1], np.int64))], dtype=last.dtype)
            replace_uses(graph, last, sliced)
            sites += 1
    return sites


def _fold_chain(reader: gs.Node, out: gs.Tensor, table: np.ndarray, axis: int):
    """MatMul(slice, W const) [-> Reshape(const, -1 at the position axis)] [-> Transpose] read from the slice.

    Returns (table folded through the chain, its position axis, the chain's last tensor, nodes) or None.
    """
    if reader.op != "MatMul" or reader.inputs[0] is not out:
        return None
    w = const_value(reader.inputs[1])
    if w is None or w.ndim != 2:
        return None
    nodes = [reader]
    value = (table.astype(np.float64) @ w.astype(np.float64)).astype(table.dtype)
    last, new_axis = reader.outputs[0], axis
    reshape = only_consumer(last, "Reshape")
    target = ints(reshape.inputs[1]) if reshape is not None else None
    if target is not None and len(target) == value.ndim + 1 and target.count(-1) == 1 and \
            target.index(-1) == axis and 0 not in target and value.shape[:axis] == tuple(target[:axis]):
        value = value.reshape([value.shape[axis] if t == -1 else t for t in target])
        nodes.append(reshape)
        last = reshape.outputs[0]
        transpose = only_consumer(last, "Transpose")
        if transpose is not None:
            perm = list(transpose.attrs["perm"])
            value = np.ascontiguousarray(value.transpose(perm))
            new_axis = perm.index(axis)
            nodes.append(transpose)
            last = transpose.outputs[0]
    return value, new_axis, last, nodes
