"""bool_slice: run Slice on int32 instead of bool/uint8 (Cast in, Slice, Cast back)."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs
from onnx import TensorProto, helper

from candidates.framework import register_pass
from candidates.graph import Builder, Namer, const_value, producer, scope_of

# Ops whose output is bool whatever their inputs (used when shape inference left a dtype unknown).
_BOOL_OPS = {"Not", "And", "Or", "Xor", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual",
             "IsNaN", "IsInf"}
# Ops whose output has the dtype of their first input.
_SAME_DTYPE_OPS = {"Slice", "Unsqueeze", "Squeeze", "Reshape", "Expand", "Transpose", "Identity", "Flatten",
                   "Gather", "Tile", "Concat"}
_NARROW = {np.dtype(np.bool_): TensorProto.BOOL, np.dtype(np.uint8): TensorProto.UINT8}


def _np_dtype(dtype) -> np.dtype | None:
    """A gs tensor dtype (numpy dtype, or an onnx TensorProto enum for types numpy lacks) as a numpy dtype."""
    if dtype is None:
        return None
    if isinstance(dtype, (int, np.integer)) and not isinstance(dtype, bool):
        try:
            return np.dtype(helper.tensor_dtype_to_np_dtype(int(dtype)))
        except Exception:
            return None
    try:
        return np.dtype(dtype)
    except TypeError:
        return None


def dtype_of(tensor: gs.Tensor, depth: int = 8) -> np.dtype | None:
    """The element type of `tensor`: its recorded dtype (value info after shape inference), else from its producer."""
    value = const_value(tensor)
    if value is not None:
        return value.dtype
    known = _np_dtype(tensor.dtype)
    if known is not None or depth == 0:
        return known
    node = producer(tensor)
    if node is None:
        return None
    if node.op == "Cast" and "to" in node.attrs:
        return _np_dtype(int(node.attrs["to"]))
    if node.op in _BOOL_OPS:
        return np.dtype(np.bool_)
    if node.op in _SAME_DTYPE_OPS and node.inputs:
        return dtype_of(node.inputs[0], depth - 1)
    if node.op == "Where" and len(node.inputs) == 3:
        return dtype_of(node.inputs[1], depth - 1) or dtype_of(node.inputs[2], depth - 1)
    return None


@register_pass("bool_slice")
def bool_slice(graph: gs.Graph) -> int:
    """Slice bool/uint8 tensors as int32: Cast(to=INT32) before each such Slice, Cast back after it.

    WeNet's x4 subsampling slices the bool padding mask (`mask[:, :, :-2:2][:, :, :-2:2]`),
    and with PreviewFeature.FASTER_DYNAMIC_SHAPES_0805 off TensorRT 8.6 refuses to build
    the encoder: "/encoder/embed/Slice requires bool or uint8 I/O but node can not be
    handled by Myelin. Dynamic shapes are not equal for slice params." TensorRT's
    ordinary slice layer handles int32 with dynamic shapes, so every Slice whose data
    input (input 0) is bool or uint8 reads Cast(to=INT32) of it and writes int32, and a
    Cast back to the original type produces the original output tensor (same name, so
    graph outputs keep theirs). bool -> int32 -> bool and uint8 -> int32 -> uint8 are
    exact, so the values are unchanged. Matched by dtype (value info from shape
    inference, else the producer's op); after the rewrite the Slice reads int32, so a
    second run finds nothing. Sites: Slices rewritten.
    """
    namer = Namer(graph, "bool_slice")
    sites = 0
    for node in [n for n in list(graph.nodes) if n.op == "Slice"]:
        if not node.inputs or not node.outputs:
            continue
        data, out = node.inputs[0], node.outputs[0]
        dtype = dtype_of(data)
        if dtype not in _NARROW:
            continue
        b = Builder(graph, namer, scope_of([node]))
        node.inputs[0] = b.op("Cast", [data], {"to": TensorProto.INT32}, dtype=np.int32, shape=data.shape)
        # the Slice now writes a new int32 tensor; the Cast back writes the original one (keeps its name)
        node.outputs[0] = gs.Variable(namer.tensor(b.scope, "Slice_int32"), dtype=np.int32, shape=out.shape)
        out.dtype = dtype
        b.op("Cast", [node.outputs[0]], {"to": _NARROW[dtype]}, outputs=[out])
        sites += 1
    return sites
