"""encoder_lengths: encoder_out_lens straight from speech_lengths by the subsampling arithmetic."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from candidates.framework import register_pass
from candidates.graph import Builder, Namer, ints, producer, replace_uses, scope_of

# Ops a lengths output passes through between the mask sum and the graph output.
_PASSTHROUGH = ("Cast", "Squeeze", "Reshape", "Identity", "Unsqueeze")


def _slice_params(node: gs.Node) -> tuple[int, int, int, int] | None:
    """(start, end, step, axis) of a single-axis Slice with constant parameters."""
    if len(node.inputs) < 3:
        return None
    starts, ends = ints(node.inputs[1]), ints(node.inputs[2])
    axes = ints(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3].name else [0]
    steps = ints(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4].name else [1]
    if None in (starts, ends, axes, steps) or not (len(starts) == len(ends) == len(axes) == len(steps) == 1):
        return None
    return starts[0], ends[0], steps[0], axes[0]


def _pad_mask_parts(mask: gs.Tensor) -> tuple[gs.Tensor, gs.Tensor] | None:
    """For mask = ~make_pad_mask(lengths, T) (optionally unsqueezed): (lengths tensor, T scalar tensor).

    make_pad_mask is `arange(T)[None, :].expand(B, T) >= lengths[:, None]`; the
    export writes Not(Unsqueeze?(GreaterOrEqual(Expand?(Unsqueeze(Range(0, T, 1))), Unsqueeze(Cast?(lengths))))).
    """
    node = producer(mask, "Unsqueeze")
    t = node.inputs[0] if node is not None else mask
    not_ = producer(t, "Not")
    if not_ is None:
        return None
    t = not_.inputs[0]
    node = producer(t, "Unsqueeze")
    if node is not None:
        t = node.inputs[0]
    ge = producer(t, ("GreaterOrEqual", "Less"))
    if ge is None:
        return None
    positions, lens = ge.inputs
    if ge.op == "Less":  # ~(pos < len) spelled the other way round is not this mask
        return None
    # positions: [Expand](Unsqueeze(Range(0, T, 1)))
    node = producer(positions, "Expand")
    if node is not None:
        positions = node.inputs[0]
    node = producer(positions, "Unsqueeze")
    if node is not None:
        positions = node.inputs[0]
    rng = producer(positions, "Range")
    if rng is None or ints(rng.inputs[0]) != [0] or ints(rng.inputs[2]) != [1]:
        return None
    # lengths: Cast?(Unsqueeze(lengths, -1))
    while producer(lens, ("Cast", "Unsqueeze")) is not None:
        lens = producer(lens).inputs[0]
    return lens, rng.inputs[1]


def match_lengths_output(graph: gs.Graph, out: gs.Tensor) -> dict | None:
    """An integer graph output computed as the sum of a subsampled ~make_pad_mask(lengths, T)."""
    t, chain = out, []
    while producer(t, _PASSTHROUGH) is not None:
        chain.append(producer(t))
        t = producer(t).inputs[0]
    rsum = producer(t, "ReduceSum")
    if rsum is None:
        return None
    t = rsum.inputs[0]
    while producer(t, _PASSTHROUGH) is not None:
        t = producer(t).inputs[0]
    slices = []
    while producer(t, "Slice") is not None:
        params = _slice_params(producer(t))
        if params is None:
            return None
        slices.append(params)
        t = producer(t).inputs[0]
    if not slices:
        return None
    rank = len(t.shape) if t.shape is not None else None
    if out.shape is not None and len(out.shape) != 1:
        return None
    for _start, _end, _step, axis in slices:
        if not (axis == -1 or (rank is not None and axis == rank - 1)):
            return None
    parts = _pad_mask_parts(t)
    if parts is None:
        return None
    lengths, total = parts
    if lengths not in graph.inputs:
        return None
    for start, end, step, _axis in slices:
        # x[start:end:step] with start 0 and a negative end (the x4 subsampling: [:-2:2])
        if start != 0 or step < 1 or not (end < 0 or end >= 2**31 - 1):
            return None
    return {"lengths": lengths, "total": total, "slices": list(reversed(slices)), "nodes": [rsum] + chain}


@register_pass("encoder_lengths", models=("encoder",))
def encoder_lengths(graph: gs.Graph) -> int:
    """Compute encoder_out_lens from speech_lengths with integer arithmetic instead of summing the mask.

    The export sums the subsampled padding mask (`mask[:, :, :-2:2][:, :, :-2:2]`).
    For a mask with n leading valid frames out of T, one slice [0:e:s] (e < 0) keeps
    ceil(n/s) valid of ceil((T+e)/s) frames, so for the x4 subsampling the sum is
    exactly min((L+3)//4, T') with T' = ((T-1)//2-1)//2, on every row, padded or not
    (a plain ((L-1)//2-1)//2 would differ from the mask sum whenever L < T). Written as
    Add/Div/Min on int32, which TensorRT runs as a few shape-free elementwise layers;
    the mask itself stays for attention. Matched structurally: an integer graph
    output reached from ReduceSum over Slice(step s, end < 0)s of
    Not(Range(0, T) >= lengths), with lengths a graph input.
    """
    namer = Namer(graph, "encoder_lengths")
    sites = 0
    for out in list(graph.outputs):
        m = match_lengths_output(graph, out)
        if m is None:
            continue
        b = Builder(graph, namer, scope_of(m["nodes"]))
        n = b.op("Cast", [m["lengths"]], {"to": 6}, dtype=np.int32)
        total = b.op("Cast", [m["total"]], {"to": 6}, dtype=np.int32)
        for _start, end, step, _axis in m["slices"]:
            if step > 1:
                n = b.op("Div", [b.op("Add", [n, b.const("round_up", np.int32(step - 1))], dtype=np.int32),
                                 b.const("step", np.int32(step))], dtype=np.int32)
            if end < 0:
                total = b.op("Add", [total, b.const("end", np.int32(end + step - 1))], dtype=np.int32)
                total = b.op("Div", [total, b.const("step", np.int32(step))], dtype=np.int32)
            # end >= 2**31-1 means "to the end": ceil(T/s)
            else:
                total = b.op("Div", [b.op("Add", [total, b.const("round_up", np.int32(step - 1))], dtype=np.int32),
                                     b.const("step", np.int32(step))], dtype=np.int32)
        lens = b.op("Min", [n, total], dtype=np.int32)
        if out.dtype is not None and np.dtype(out.dtype) != np.int32:
            from onnx import helper
            lens = b.op("Cast", [lens], {"to": helper.np_dtype_to_tensor_dtype(np.dtype(out.dtype))}, dtype=out.dtype)
        replace_uses(graph, out, lens)
        sites += 1
    return sites
