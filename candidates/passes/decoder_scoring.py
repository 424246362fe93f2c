"""decoder_scoring: the hypothesis-scoring index path in int32, without the exporter's int64 casts."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from candidates.framework import register_pass
from candidates.graph import const_value, producer, replace_uses

INT32, INT64 = 6, 7
_I32 = np.iinfo(np.int32)
# data input 0 is moved/reshaped without changing values
_MOVERS = {"Reshape", "Slice", "Squeeze", "Unsqueeze", "Flatten", "Transpose", "Identity", "Expand", "Tile"}
_ARITH = {"Mul", "Add", "Sub", "Min", "Max", "Where", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"}
_INDEX_INPUT = {"Gather": 1, "GatherElements": 1}


def _plan(graph: gs.Graph, cast: gs.Node) -> dict | None:
    """What has to change to keep the int32 values of `cast`'s input int32 downstream; None if impossible."""
    start = cast.outputs[0]
    tensors = {id(start): start}
    casts_to_change: dict[int, gs.Node] = {}
    consts: dict[tuple[int, int], np.ndarray] = {}
    queue = [start]
    outputs = {id(t) for t in graph.outputs}
    while queue:
        t = queue.pop()
        if id(t) in outputs:
            return None
        for reader in t.outputs:
            positions = [i for i, x in enumerate(reader.inputs) if x is t]
            if reader.op in _MOVERS and positions == [0]:
                follow = reader.outputs[:1]
            elif reader.op in _INDEX_INPUT and positions == [_INDEX_INPUT[reader.op]]:
                continue
            elif reader.op in ("Cast", "Shape"):
                continue  # same values cast, same shape read
            elif reader.op in _ARITH:
                if reader.op == "Where" and 0 in positions:
                    return None
                for i, other in enumerate(reader.inputs):
                    if id(other) in tensors or (reader.op == "Where" and i == 0):
                        continue
                    value = const_value(other)
                    src = producer(other, "Cast")
                    if value is not None and value.dtype == np.int64:
                        if value.size and (value.min() < _I32.min or value.max() > _I32.max):
                            return None
                        consts[(id(reader), i)] = value.astype(np.int32)
                    elif src is not None and src.attrs.get("to") == INT64 and src.inputs[0].dtype is not None \
                            and np.dtype(src.inputs[0].dtype).kind in "bi" \
                            and np.dtype(src.inputs[0].dtype).itemsize <= 4:
                        casts_to_change[id(src)] = src
                    else:
                        return None
                follow = [] if reader.op in ("Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual") \
                    else reader.outputs[:1]
            else:
                return None
            for out in follow:
                if id(out) not in tensors:
                    tensors[id(out)] = out
                    queue.append(out)
    # casts feeding arithmetic now produce int32; their other readers must not need int64
    for src in casts_to_change.values():
        if any(id(r) not in {id(n) for t in tensors.values() for n in t.outputs} for r in src.outputs[0].outputs):
            return None
    return {"tensors": list(tensors.values()), "casts": list(casts_to_change.values()), "consts": consts}


@register_pass("decoder_scoring", models=("decoder",))
def decoder_scoring(graph: gs.Graph) -> int:
    """Keep the hypotheses' token ids int32 from the input to the Gather/GatherElements that use them.

    The export casts `hyps_pad_sos_eos` (int32) to int64 at once, then reshapes,
    slices it into decoder input (sos) and targets (eos), masks the targets
    (`hyps_pad_eos * mask`, another cast of the mask to int64) and uses them as
    indices of the embedding Gather and of the scoring GatherElements over the
    log-softmax. TensorRT has no native int64 and narrows every such tensor with a
    warning (and a cast layer); ONNX Gather/GatherElements take int32 indices, so
    the rewrite drops the widening cast, narrows the mask casts and int64 constants
    on that path, and leaves values unchanged (they came from int32). The one
    LogSoftmax already feeds both decoder_out and the gathered scores. Applies only
    when every reader on the path accepts int32 (checked op by op).
    Sites: widening casts removed.
    """
    sites = 0
    for cast in [n for n in list(graph.nodes) if n.op == "Cast" and n.attrs.get("to") == INT64]:
        src = cast.inputs[0]
        if src.dtype is None or np.dtype(src.dtype) != np.int32:
            continue
        plan = _plan(graph, cast)
        if plan is None:
            continue
        for other in plan["casts"]:
            other.attrs["to"] = INT32
            other.outputs[0].dtype = np.int32
        for (node_id, i), value in plan["consts"].items():
            node = next(n for t in plan["tensors"] for n in t.outputs if id(n) == node_id)
            node.inputs[i] = gs.Constant(node.inputs[i].name + "_i32", value)
        for t in plan["tensors"]:
            t.dtype = np.int32
        replace_uses(graph, cast.outputs[0], src)
        cast.outputs.clear()
        sites += 1
    return sites
