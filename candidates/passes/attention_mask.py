"""attention_mask: one additive float mask per distinct attention mask, shared by every block."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from candidates.framework import register_pass
from candidates.graph import Builder, Namer, const_value, only_consumer, producer, replace_uses, scalar_value, \
    scope_of

# Large negative added to masked scores. exp(s - 3e4 - max) is exactly 0 in FP32 and
# FP16 for any realistic score range (|scores| << 1e4), so masked keys get exactly the
# zero weight the original -inf gives; unlike -inf or FLT_MIN it stays finite in FP16
# (max 65504), so a row with every key masked gives a finite softmax instead of NaN.
NEG = -30000.0
# Ops that only re-express a boolean mask; two conditions built from the same root by
# the same chain of these are the same mask.
_MASK_OPS = ("Cast", "Unsqueeze", "Equal", "Not", "Identity", "Squeeze")


def _signature(t: gs.Tensor, depth: int = 0):
    node = producer(t)
    if node is None or node.op not in _MASK_OPS or depth > 16:
        return ("tensor", t.name)
    parts = []
    for inp in node.inputs:
        value = const_value(inp)
        parts.append(("const", value.dtype.str, value.shape, value.tobytes()) if value is not None
                     else _signature(inp, depth + 1))
    attrs = tuple(sorted((k, str(v)) for k, v in node.attrs.items()))
    return (node.op, attrs, tuple(parts))


def _is_masked_fill(node: gs.Node, fill_ok) -> tuple[gs.Tensor, gs.Tensor] | None:
    """Where(cond, fill, x) with a scalar constant fill accepted by fill_ok: (cond, x)."""
    if node is None or node.op != "Where" or len(node.inputs) != 3:
        return None
    fill = scalar_value(node.inputs[1])
    if fill is None or not fill_ok(fill) or const_value(node.inputs[2]) is not None:
        return None
    return node.inputs[0], node.inputs[2]


def match_masked_softmax(softmax: gs.Node) -> dict | None:
    """Where(c, -inf|<=-1e4, scores) -> Softmax(last axis) -> Where(c', 0, .) with c, c' the same mask."""
    if softmax.op != "Softmax" or softmax.attrs.get("axis", -1) != -1:
        return None
    before = _is_masked_fill(producer(softmax.inputs[0]), lambda v: v <= -1e4)
    if before is None:
        return None
    cond, scores = before
    after_node = only_consumer(softmax.outputs[0], "Where")
    after = _is_masked_fill(after_node, lambda v: v == 0.0)
    if after is None or after[1] is not softmax.outputs[0]:
        return None
    if _signature(after[0]) != _signature(cond):
        return None
    if len(softmax.inputs[0].outputs) != 1:
        return None
    return {"cond": cond, "scores": scores, "softmax": softmax, "after": after_node,
            "nodes": [producer(softmax.inputs[0]), softmax, after_node]}


@register_pass("attention_mask")
def attention_mask(graph: gs.Graph) -> int:
    """Replace masked_fill(-inf) -> softmax -> masked_fill(0) by softmax(scores + M), M built once per mask.

    WeNet's attention does `scores.masked_fill(mask, -inf)`, softmax, then
    `masked_fill(mask, 0.0)`: per block a Where before and after the softmax plus
    the boolean mask's Cast/Equal chain. The rewrite adds one float mask
    M = Where(mask, -3e4, 0) (built once for every block using the same mask) to the
    scores, giving the MatMul-Add-Softmax-MatMul shape TensorRT's attention fusion
    looks for. Masked keys still get weight exactly 0. The after-softmax zeroing
    only mattered for rows whose keys are all masked (an utterance with no valid
    frame, a zero-length hypothesis): there the original yields zero attention, so
    the rewrite multiplies the attention context (after the second MatMul, keeping
    the fused pattern intact) by R = any(key valid) in {0, 1}, also built once per
    mask. Results are identical on padded batches including such rows.
    """
    namer = Namer(graph, "attention_mask")
    shared: dict = {}
    matches = [m for m in (match_masked_softmax(n) for n in list(graph.nodes) if n.op == "Softmax") if m]
    if not matches:
        return 0
    groups: dict = {}
    for m in matches:
        groups.setdefault(_signature(m["cond"]), []).append(m)
    for sig, ms in groups.items():
        cond = ms[0]["cond"]
        b = Builder(graph, namer, scope_of([n for m in ms for n in m["nodes"]]))
        additive = b.op("Where", [cond, b.const("neg", np.array(NEG, np.float32)), b.const("zero", np.array(0.0, np.float32))],
                        dtype=np.float32)
        keep = b.op("Cast", [b.op("Not", [cond], dtype=np.bool_)], {"to": 1}, dtype=np.float32)
        any_valid = b.op("ReduceMax", [keep], {"axes": [-1], "keepdims": 1}, dtype=np.float32)
        shared[sig] = (additive, any_valid)
        for m in ms:
            bb = Builder(graph, namer, scope_of(m["nodes"]))
            s = bb.op("Add", [m["scores"], additive], dtype=m["scores"].dtype)
            m["softmax"].inputs[0] = s
            probs = m["softmax"].outputs[0]
            after_out = m["after"].outputs[0]
            readers = list(after_out.outputs)
            if readers and all(r.op == "MatMul" and r.inputs[0] is after_out and r.inputs[1] is not after_out
                               for r in readers):
                # zero whole context rows after P @ V instead of P itself
                for r in readers:
                    ctx = r.outputs[0]
                    new_ctx = gs.Variable(namer.tensor(bb.scope, "context"), dtype=ctx.dtype)
                    r.outputs[0] = new_ctx
                    bb.op("Mul", [new_ctx, any_valid], outputs=[ctx])
                    r.inputs[0] = probs
                m["after"].outputs.clear()
            else:
                replace_uses(graph, after_out, bb.op("Mul", [probs, any_valid], dtype=probs.dtype))
    return len(matches)
