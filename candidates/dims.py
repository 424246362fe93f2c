"""Reshape targets built by the exporter's shape arithmetic, resolved with a ShapeProbe."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from candidates.graph import const_value, ints, producer
from candidates.shape_probe import ShapeProbe


def resolve_reshape_target(reshape: gs.Node, probe: ShapeProbe | None) -> list[gs.Tensor | int] | None:
    """The target as pieces, each knowable entry an int: its value, 0 (= the input's dim) or one -1.

    A constant target comes back as its ints. A Concat of one-element pieces is
    resolved with the probe: a piece with the same value in every probe is static;
    one equal to the Reshape input's dim at that position in every probe becomes 0;
    if exactly one piece stays unknown (and no -1 is present) it becomes -1. Other
    pieces stay tensors. None: not a Concat of one-element pieces, or allowzero set.
    """
    if reshape.attrs.get("allowzero", 0) != 0:
        return None
    target = ints(reshape.inputs[1])
    if target is not None:
        return target
    concat = producer(reshape.inputs[1], "Concat")
    if concat is None or concat.attrs.get("axis", 0) != 0:
        return None
    data = reshape.inputs[0]
    data_dims = probe.dims(data) if probe is not None else None
    pieces: list[gs.Tensor | int] = []
    for i, piece in enumerate(concat.inputs):
        value = const_value(piece)
        if value is not None:
            if value.size != 1:
                return None
            pieces.append(int(value.reshape(-1)[0]))
            continue
        values = probe.values(piece) if probe is not None else None
        if values is None or any(v.size != 1 for v in values):
            if piece.shape is not None and list(piece.shape) != [1]:
                return None
            pieces.append(piece)
            continue
        flat = [int(v.reshape(-1)[0]) for v in values]
        if len(set(flat)) == 1:
            pieces.append(flat[0])
        elif data_dims is not None and all(len(d) > i and d[i] == v for d, v in zip(data_dims, flat)):
            pieces.append(0)
        else:
            pieces.append(piece)
    dynamic = [p for p in pieces if not isinstance(p, int)]
    if len(dynamic) == 1 and not any(isinstance(p, int) and p == -1 for p in pieces):
        pieces = [-1 if not isinstance(p, int) else p for p in pieces]
    return pieces


def as_ints(pieces: list[gs.Tensor | int] | None) -> list[int] | None:
    if pieces is None or not all(isinstance(p, (int, np.integer)) for p in pieces):
        return None
    return [int(p) for p in pieces]
