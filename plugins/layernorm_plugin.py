"""layernorm_plugin: LayerNorm -> the "LayerNorm" plugin (version 1) of TensorRT 8.5's plugin library.

TensorRT 8.6.0 removed it: its OSS changelog ("demoDiffusion acceleration is now
supported out of the box ... The following plugins have been removed accordingly:
GroupNorm, LayerNorm, MultiHeadCrossAttention, MultiHeadFlashAttention, ...") and
the 8.6/10.x plugin/ trees have no layerNormPlugin. On TensorRT 8.6 use the
`layernorm` graph pass (opset-17 LayerNormalization -> INormalizationLayer)
instead; this rewrite is for a TensorRT 8.5 registry or a user library (*.so)
that provides a creator with the same interface.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from candidates.graph import Builder, Namer, replace_uses, scope_of
from plugins.rewrites import PLUGIN_DOMAIN, register_plugin
from plugins.layernorms import find_all_layernorms

CREATOR = ("LayerNorm", "1")


@register_plugin("layernorm_plugin", creator=CREATOR)
def layernorm_plugin(graph: gs.Graph) -> int:
    """Replace each LayerNorm by a `LayerNorm` plugin node (TensorRT 8.5 plugin library interface).

    Inputs x, gamma [E], beta [E] (constants); fields epsilon (FLOAT attribute ->
    kFLOAT32) and axis = -1 (INT -> kINT32); any rank. The OSS 8.6.0 changelog lists it
    removed, but the 8.6.0 pip wheel still registers ("LayerNorm", "1"); elsewhere a build
    fails unless a loaded library registers it: check with plugins.required_creators and
    plugins.library.plugin_creators, or use the `layernorm` pass instead.
    """
    namer = Namer(graph, "layernorm_plugin")
    sites = 0
    fused: dict[int, gs.Tensor] = {}
    for m in find_all_layernorms(graph):
        x = fused.get(id(m["x"]), m["x"])
        b = Builder(graph, namer, scope_of(m["nodes"]))
        y = b.op(CREATOR[0], [x, b.const("gamma", m["gamma"]), b.const("beta", m["beta"])],
                 {"plugin_version": CREATOR[1], "epsilon": float(m["epsilon"]), "axis": -1},
                 dtype=np.float32, domain=PLUGIN_DOMAIN)
        replace_uses(graph, m["out"], y)
        fused[id(m["out"])] = y
        sites += 1
    return sites
