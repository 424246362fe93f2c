"""skip_layernorm_plugin(_fp16): residual Add + LayerNorm -> CustomSkipLayerNormPluginDynamic (v1)."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from candidates.graph import Builder, Namer, const_value, producer, replace_uses, scope_of, split_const
from candidates.shape_probe import ShapeProbe
from plugins.rewrites import PLUGIN_DOMAIN, register_plugin
from plugins.layernorms import find_all_layernorms

CREATOR = ("CustomSkipLayerNormPluginDynamic", "1")
# The plugin's kernel normalizes with rsqrt(var) and no epsilon; it matches a LayerNorm
# whose epsilon is this small or smaller (WeNet: 1e-5) to ~eps/(2 var) relative.
MAX_EPSILON = 1e-5


def _bias_source(a: gs.Tensor) -> tuple[gs.Tensor, np.ndarray] | None:
    """a = Add(t, bias const [E]) read only by the residual Add: (t, bias)."""
    add = producer(a, "Add")
    if add is None or len(a.outputs) != 1:
        return None
    t, bias = split_const(add)
    if t is None or bias is None or bias.ndim < 1 or bias.size != bias.shape[-1]:
        return None
    return t, bias.reshape(-1).astype(np.float32)


def rewrite(graph: gs.Graph, name: str, type_id: int) -> int:
    probe = ShapeProbe(graph)
    if not probe.ok:
        return 0
    namer = Namer(graph, name)
    sites = 0
    alias: dict[int, gs.Tensor] = {}   # id(new output) -> the replaced tensor the probe measured

    def dims(t: gs.Tensor):
        return probe.dims(alias.get(id(t), t))

    for m in find_all_layernorms(graph):
        x = m["x"]
        add = producer(x, "Add")
        if add is None or m["epsilon"] > MAX_EPSILON:
            continue
        a, b = add.inputs
        if const_value(a) is not None or const_value(b) is not None:
            continue
        dims_a, dims_b, dims_x = dims(a), dims(b), dims(x)
        width = m["gamma"].size
        if dims_a is None or dims_a != dims_b or dims_a != dims_x or len(dims_a[0]) not in (2, 3) \
                or any(d[-1] != width for d in dims_a):
            continue
        bias = None
        ln_nodes = {id(n) for n in m["nodes"]}
        if all(id(r) in ln_nodes for r in x.outputs):  # the sum has no other reader: fold the sublayer's bias
            for first, second in ((a, b), (b, a)):
                found = _bias_source(first)
                if found is not None and found[1].size == width:
                    (a, bias), b = found, second
                    break
        rank = len(dims_x[0])
        axes = [3, 4] if rank == 3 else [0, 3, 4]   # [B, T, E] -> [B, T, E, 1, 1]; [N, E] -> [1, N, E, 1, 1]
        bld = Builder(graph, namer, scope_of(m["nodes"] + [add]))
        axes_c = bld.const("axes", np.array(axes, np.int64))
        a5 = bld.op("Unsqueeze", [a, axes_c], dtype=np.float32)
        b5 = bld.op("Unsqueeze", [b, axes_c], dtype=np.float32)
        attrs = {"plugin_version": CREATOR[1], "type_id": int(type_id), "ld": int(width),
                 "beta": gs.Constant(namer.tensor(bld.scope, "beta"), m["beta"].astype(np.float32)),
                 "gamma": gs.Constant(namer.tensor(bld.scope, "gamma"), m["gamma"].astype(np.float32))}
        if bias is not None:
            attrs["bias"] = gs.Constant(namer.tensor(bld.scope, "bias"), bias)
        y5 = bld.op(CREATOR[0], [a5, b5], attrs, dtype=np.float32, domain=PLUGIN_DOMAIN)
        y = bld.op("Squeeze", [y5, axes_c], dtype=m["out"].dtype)
        replace_uses(graph, m["out"], y)
        alias[id(y)] = m["out"]
        sites += 1
    return sites


_DOC = """Fuse residual Add + LayerNorm into TensorRT's CustomSkipLayerNormPluginDynamic (version 1, {precision} I/O).

    Matches LayerNorm(a + b) (decomposed or LayerNormalization, last axis,
    epsilon <= 1e-5) with a, b non-constant and of equal shape (checked with a
    ShapeProbe), rank 2 or 3. The plugin requires 5-D input with the hidden size at
    dim 2 and ones at dims 3, 4, so both operands are unsqueezed to [B, T, E, 1, 1]
    and the result squeezed back. Fields: type_id = {type_id} ({precision}; the
    plugin then accepts only {precision} tensors), ld = E, beta, gamma as float32
    TENSOR attributes, and bias = the sublayer's output bias when the sum has no
    other reader (that Add is then folded in). Where the sum is also the next
    residual the Add stays for it. The kernel has no epsilon (rsqrt(var)): results
    differ from LayerNorm(eps=1e-5) by about eps / (2 var) relative.{extra}
    """


def skip_layernorm_plugin(graph: gs.Graph) -> int:
    return rewrite(graph, "skip_layernorm_plugin", type_id=0)


def skip_layernorm_plugin_fp16(graph: gs.Graph) -> int:
    return rewrite(graph, "skip_layernorm_plugin_fp16", type_id=1)


# one docstring for both variants, filled in before registration (which requires it)
skip_layernorm_plugin.__doc__ = _DOC.format(precision="FP32", type_id=0, extra="")
skip_layernorm_plugin_fp16.__doc__ = _DOC.format(
    precision="FP16", type_id=1, extra=" Needs an engine built with FP16 enabled.")
register_plugin("skip_layernorm_plugin", creator=CREATOR)(skip_layernorm_plugin)
register_plugin("skip_layernorm_plugin_fp16", creator=CREATOR)(skip_layernorm_plugin_fp16)
