"""Plugin rewrites: graph rewrites whose new nodes are TensorRT plugin ops, in candidates' registry.

TensorRT's ONNX parser (8.6 and 10) imports any op type it has no importer for
through FallbackPluginImporter: it looks up the plugin creator named by the node's
op_type, version = the node's string attribute `plugin_version` (default "1"),
namespace = `plugin_namespace` (default ""), and turns every node attribute whose
name is one of the creator's fields into a PluginField, typed by the ONNX
attribute type: INT/INTS -> kINT32, FLOAT/FLOATS -> kFLOAT32, STRING -> kCHAR,
TENSOR -> by element type (FLOAT -> kFLOAT32, FLOAT16 -> kFLOAT16, INT32 -> kINT32,
INT8 -> kINT8, ...; INT64 and BOOL tensors are rejected). Fields the node lacks are
left to the creator's defaults (with a parser warning). The node's domain is not
used for the lookup; plugin nodes here live in the custom domain `trt.plugins` so
that onnx.checker accepts them. Graphs with plugin nodes cannot run in onnxruntime.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import onnx

from candidates.framework import PLUGIN, PassError, available, get_pass, register_pass, run_passes

PLUGIN_DOMAIN = "trt.plugins"


def register_plugin(name: str, *, creator: tuple[str, str], models: Sequence[str] = ("encoder", "decoder"),
                    min_opset: int | None = None):
    """Register `fn(graph) -> int` as a plugin rewrite producing `creator` = (plugin name, version) nodes."""
    return register_pass(name, models=models, kind=PLUGIN, domains=[(PLUGIN_DOMAIN, 1)], creator=creator,
                         min_opset=min_opset)


def available_plugins(model: str | None = None) -> list[str]:
    """Names of the registered plugin rewrites (for `model`, if given)."""
    return available(model, PLUGIN)


def apply_plugins(model: onnx.ModelProto, names: Sequence[str], *, strict: bool = False,
                  model_name: str | None = None) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Apply plugin rewrites in order (after the graph passes); returns the model and sites per rewrite.

    Same contract as candidates.apply_passes: unknown names raise PassError, a
    rewrite with no site warns and reports 0 (raises under strict=True).
    """
    return run_passes(model, names, kind=PLUGIN, strict=strict, model_name=model_name)


def required_creators(names: Iterable[str]) -> list[tuple[str, str]]:
    """(creator name, version) each named plugin rewrite needs in TensorRT's plugin registry."""
    out = []
    for name in names:
        p = get_pass(name, PLUGIN)
        if p.creator is not None and p.creator not in out:
            out.append(p.creator)
    return out


def usable_plugins(creators: Iterable[tuple[str, ...]], model: str | None = None) -> list[str]:
    """The plugin rewrites whose creator is among `creators` (e.g. library.plugin_creators() on the GPU host)."""
    have = {(c[0], c[1]) for c in creators}
    return [n for n in available_plugins(model) if get_pass(n, PLUGIN).creator in have]


__all__ = ["PLUGIN_DOMAIN", "PassError", "apply_plugins", "available_plugins", "register_plugin",
           "required_creators", "usable_plugins"]
