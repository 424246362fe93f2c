"""Rewrites to our own plugin library (plugins/src/, built by plugins/build_plugins.sh).

- `wenet_layernorm_plugin`: every last-axis LayerNorm -> `WenetLayerNorm` v1 (FP32 math, FP32 or
  FP16 I/O); where its input is a residual Add of two same-shape tensors the Add is fused in, and
  where that sum is read elsewhere too (the next residual) the plugin's second output replaces it.
- `wenet_log_softmax_plugin`: the decoder's LogSoftmax over the vocabulary -> `WenetLogSoftmax`
  v1 (FP32 math, FP32 or FP16 I/O).

Building an engine from a rewritten graph needs the library loaded first (`--plugin-lib
work/plugins/libwenet_trt_plugins.so`, or the `.so` that build.sh writes next to the plans).
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from candidates.graph import Builder, Namer, const_value, producer, replace_uses, scope_of
from candidates.shape_probe import ShapeProbe
from plugins.rewrites import PLUGIN_DOMAIN, register_plugin
from plugins.layernorms import find_all_layernorms

LIBRARY_NAME = "libwenet_trt_plugins.so"
LAYERNORM = ("WenetLayerNorm", "1")
LOG_SOFTMAX = ("WenetLogSoftmax", "1")
MAX_WIDTH = 1024   # the kernel keeps one row per warp in shared memory (plugins/src/layernorm.cu)


def _residual_operands(m: dict, probe: ShapeProbe, alias: dict) -> list[gs.Tensor] | None:
    """[a, b] when the LayerNorm's input is Add(a, b) of two non-constant tensors of x's exact shape."""
    add = producer(m["x"], "Add")
    if add is None or len(add.inputs) != 2 or not probe.ok:
        return None
    a, b = add.inputs
    if const_value(a) is not None or const_value(b) is not None:
        return None
    dims = [probe.dims(alias.get(id(t), t)) for t in (a, b, m["x"])]
    if dims[0] is None or dims[0] != dims[1] or dims[0] != dims[2] \
            or any(len(d) == 0 or d[-1] != m["gamma"].size for d in dims[0]):
        return None   # broadcasting (or unknown shapes): the plugin takes equal shapes only
    return [a, b]


@register_plugin("wenet_layernorm_plugin", creator=LAYERNORM)
def wenet_layernorm_plugin(graph: gs.Graph) -> int:
    """Replace each LayerNorm (and its residual Add) by our WenetLayerNorm plugin: FP32 math, FP32/FP16 I/O.

    Matches the decomposed opset-13 chain or LayerNormalization (last axis, constant
    gamma/beta, width <= 1024). Attributes: epsilon (FLOAT), gamma and beta (float32
    TENSOR [E] -> kFLOAT32 fields, serialized with the plugin), residual and output_sum
    (INT 0/1). Where the LayerNorm reads Add(a, b) of two non-constant tensors of the
    same shape (checked with a ShapeProbe: no broadcasting), the inputs are a, b and the
    Add is computed inside (residual = 1); where the sum has other readers (the next
    block's residual), the plugin's second output is the sum (output_sum = 1) and the
    Add goes away. Why: FP16 engines miss the accuracy thresholds; this keeps every norm
    in FP32 with FP16 tensors around it. Needs plugins/build_plugins.sh's library loaded.
    """
    probe = ShapeProbe(graph)
    namer = Namer(graph, "wenet_layernorm_plugin")
    replaced: dict[int, gs.Tensor] = {}   # id(old tensor) -> the plugin output now holding its value
    alias: dict[int, gs.Tensor] = {}      # id(plugin output) -> the old tensor (what the probe measured)
    sites = 0
    for m in find_all_layernorms(graph):
        width = m["gamma"].size
        if not 1 <= width <= MAX_WIDTH:
            continue
        x = m["x"]
        if probe.ok:
            dx = probe.dims(x)
            if dx is None or any(len(d) == 0 or d[-1] != width for d in dx):
                continue   # gamma broadcast over a different last dimension: not a plain LayerNorm
        operands = _residual_operands(m, probe, alias)
        ln_nodes = {id(n) for n in m["nodes"]}
        output_sum = operands is not None and (any(id(r) not in ln_nodes for r in x.outputs)
                                               or any(t is x for t in graph.outputs))
        inputs = operands if operands is not None else [replaced.get(id(x), x)]
        bld = Builder(graph, namer, scope_of(m["nodes"] + ([producer(x)] if operands else [])))
        attrs = {"plugin_version": LAYERNORM[1], "epsilon": float(m["epsilon"]),
                 "gamma": gs.Constant(namer.tensor(bld.scope, "gamma"), m["gamma"].astype(np.float32)),
                 "beta": gs.Constant(namer.tensor(bld.scope, "beta"), m["beta"].astype(np.float32)),
                 "residual": int(operands is not None), "output_sum": int(output_sum)}
        outs = bld.op(LAYERNORM[0], inputs, attrs, n_out=1 + int(output_sum), dtype=m["out"].dtype or np.float32,
                      domain=PLUGIN_DOMAIN)
        outs = outs if isinstance(outs, list) else [outs]
        for old, new in zip((m["out"], x), outs):
            replace_uses(graph, old, new)
            replaced[id(old)] = new
            alias[id(new)] = old
        sites += 1
    return sites


@register_plugin("wenet_log_softmax_plugin", creator=LOG_SOFTMAX, models=("decoder",))
def wenet_log_softmax_plugin(graph: gs.Graph) -> int:
    """Replace LogSoftmax over the last axis (the decoder's vocabulary scores) by our WenetLogSoftmax plugin.

    FP32 max / sum-of-exp / log whatever the I/O type (FP32 or FP16), one block per
    row. Matches LogSoftmax whose axis is the last one (axis -1, or rank - 1 where the
    rank is known; before opset 13 the op flattens to 2-D at `axis`, the same thing for
    the last axis) on a float32/float16 input. No plugin fields. Why: FP16 decoder
    engines miss the 2e-4 median relative error; the scores keep an FP32 reduction.
    Needs plugins/build_plugins.sh's library loaded.
    """
    namer = Namer(graph, "wenet_log_softmax_plugin")
    sites = 0
    for node in list(graph.nodes):
        if node.op != "LogSoftmax" or len(node.inputs) != 1 or len(node.outputs) != 1:
            continue
        x = node.inputs[0]
        rank = len(x.shape) if x.shape is not None else None
        axis = int(node.attrs.get("axis", -1 if graph.opset >= 13 else 1))
        if not (axis == -1 or (rank is not None and axis == rank - 1)):
            continue
        if x.dtype is not None and np.dtype(x.dtype) not in (np.dtype(np.float32), np.dtype(np.float16)):
            continue
        bld = Builder(graph, namer, scope_of([node]))
        y = bld.op(LOG_SOFTMAX[0], [x], {"plugin_version": LOG_SOFTMAX[1]}, dtype=x.dtype or np.float32,
                   domain=PLUGIN_DOMAIN)
        replace_uses(graph, node.outputs[0], y)
        sites += 1
    return sites
