"""Layer groups: the unit of per-layer precision.

A group is a sublayer kind ("feed_forward") or, at block granularity, a block
index and kind ("block3.feed_forward"). The workload spec says how layers are
assigned (workload/groups.py): WeNet's specs by the ONNX node-name scope that the
PyTorch export writes (`/encoder/encoders.3/feed_forward/w_1/MatMul`), which TensorRT
keeps as the layer name; a spec without patterns by the ONNX op type of the node a layer
comes from. Graph passes keep the scope of the nodes they replace, so rewritten layers stay
in their group.
"""
from __future__ import annotations

import re
from typing import Iterator, Mapping

from workload import registry


class _Groups(Mapping):
    """GROUPS[model]: the kinds of a registered workload, in its spec's order."""

    def __getitem__(self, model: str) -> tuple[str, ...]:
        if not registry.known(model):
            raise KeyError(model)
        return registry.group_names(model)

    def __iter__(self) -> Iterator[str]:
        return iter(registry.names())

    def __len__(self) -> int:
        return len(registry.names())


GROUPS: Mapping[str, tuple[str, ...]] = _Groups()


def layer_group(model: str, layer_name: str, by_block: bool = False) -> str | None:
    """The group of a layer, or None for layers outside every group (shape math, I/O glue)."""
    return registry.matcher(model).group_of(layer_name, by_block)


def is_group(model: str, group: str) -> bool:
    """A group name of the model: one of GROUPS[model], or `block<i>.<kind>` of one."""
    m = re.fullmatch(r"block\d+\.(\w+)", group)
    return (m.group(1) if m else group) in GROUPS[model]


def group_kind(group: str) -> str:
    """'block3.feed_forward' -> 'feed_forward'; a kind is its own kind."""
    return group.split(".", 1)[1] if group.startswith("block") and "." in group else group
