"""Layer groups: the unit of per-layer precision.

A group is a sublayer kind ("feed_forward") or, at block granularity, a block
index and kind ("block3.feed_forward"). Layers are assigned by the ONNX node
name scope that the PyTorch export writes (`/encoder/encoders.3/feed_forward/w_1/MatMul`),
which TensorRT keeps as the layer name. Graph passes keep the scope of the nodes
they replace, so rewritten layers stay in their group.
"""
from __future__ import annotations

import re

# Ordered: the first pattern that matches a layer name wins.
_KIND_PATTERNS: dict[str, tuple[tuple[str, str], ...]] = {
    "encoder": (
        ("softmax", r"(self_attn|src_attn)/.*Softmax"),
        ("subsampling", r"/embed/|/global_cmvn/"),
        ("attention", r"/self_attn/"),
        ("feed_forward", r"/feed_forward(_macaron)?/"),
        ("conv_module", r"/conv_module/"),
        ("norm", r"/(norm_\w+|after_norm|norm)/|LayerNorm"),
    ),
    "decoder": (
        ("softmax", r"(self_attn|src_attn)/.*Softmax"),
        ("embedding", r"/embed/"),
        ("self_attention", r"/self_attn/"),
        ("cross_attention", r"/src_attn/"),
        ("feed_forward", r"/feed_forward/"),
        ("norm", r"/(norm\d|after_norm)/|LayerNorm"),
        ("output", r"/output_layer/|LogSoftmax|/scoring/"),
    ),
}

GROUPS: dict[str, tuple[str, ...]] = {m: tuple(k for k, _ in pats) for m, pats in _KIND_PATTERNS.items()}

_BLOCK = re.compile(r"/(?:encoders|decoders)\.(\d+)/")
_COMPILED = {m: [(k, re.compile(p)) for k, p in pats] for m, pats in _KIND_PATTERNS.items()}


def layer_group(model: str, layer_name: str, by_block: bool = False) -> str | None:
    """The group of a layer, or None for layers outside every group (shape math, I/O glue)."""
    for kind, pattern in _COMPILED[model]:
        if pattern.search(layer_name):
            if by_block:
                m = _BLOCK.search(layer_name)
                if m:
                    return f"block{m.group(1)}.{kind}"
            return kind
    return None


def block_of(layer_name: str) -> int | None:
    """The block index of a layer (`/encoders.3/...` -> 3), or None outside every block."""
    m = _BLOCK.search(layer_name)
    return int(m.group(1)) if m else None


def is_group(model: str, group: str) -> bool:
    """A group name of the model: one of GROUPS[model], or `block<i>.<kind>` of one."""
    m = re.fullmatch(r"block\d+\.(\w+)", group)
    return (m.group(1) if m else group) in GROUPS[model]


def group_kind(group: str) -> str:
    """'block3.feed_forward' -> 'feed_forward'; a kind is its own kind."""
    return group.split(".", 1)[1] if group.startswith("block") and "." in group else group
