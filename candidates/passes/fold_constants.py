"""fold_constants: constant folding and shape simplification."""
from __future__ import annotations

import logging

import numpy as np
import onnx_graphsurgeon as gs

from candidates.framework import register_pass
from candidates.graph import Namer, replace_uses, scope_of
from candidates.shape_probe import ShapeProbe

log = logging.getLogger(__name__)


def fold_probed_shapes(graph: gs.Graph) -> int:
    """Replace integer shape arithmetic whose value is the same at every probe shape by a constant."""
    probe = ShapeProbe(graph)
    if not probe.ok:
        return 0
    namer = Namer(graph, "fold_constants")
    folded = 0
    for node in list(graph.nodes):
        if node.op in ("Constant",) or not node.outputs:
            continue
        for out in node.outputs:
            if not out.outputs or out in graph.outputs:
                continue
            values = probe.values(out)
            if values is None or any(v.shape != values[0].shape or not np.array_equal(v, values[0])
                                     for v in values[1:]):
                continue
            const = gs.Constant(namer.tensor(scope_of([node]), "value"), values[0].copy())
            replace_uses(graph, out, const)
            folded += 1
    return folded


@register_pass("fold_constants")
def fold_constants(graph: gs.Graph) -> int:
    """Fold every subgraph whose value is known before run time, including shape arithmetic.

    onnx-graphsurgeon's fold_constants with fold_shapes: Constant nodes become
    initializers, weight transposes and the exporter's Identity copies of shared
    weights disappear, Shape->Gather of statically known dims becomes a constant.
    ONNX shape inference loses most shapes after the first data-dependent Reshape,
    so shape arithmetic (integer tensors that depend on the inputs only through
    Shape) is also evaluated with a ShapeProbe: a value equal at every probe shape
    (e.g. the decoder's fixed 63 target positions, 4 heads, 256) becomes a constant
    and the folding repeats. TensorRT folds some of this itself, but the other
    passes match cleaner graphs and the parser sees fewer shape tensors.
    Sites: nodes removed.
    """
    before = len(graph.nodes)
    try:  # graphsurgeon evaluates with onnxruntime; keep its optimizer warnings out of the log
        import onnxruntime as ort
        ort.set_default_logger_severity(3)
    except ImportError:
        pass
    graph.fold_constants(fold_shapes=True, error_ok=False).cleanup()
    if fold_probed_shapes(graph):
        graph.cleanup()
        graph.fold_constants(fold_shapes=True, error_ok=False).cleanup()
    return max(0, before - len(graph.nodes))
