"""The engine inspector's per-layer JSON and what it says about precisions.

`inspect_plan` asks the backend (TensorRT: IEngineInspector, LayerInformationFormat.JSON;
the engine must be built with ProfilingVerbosity.DETAILED for more than layer names).
Everything else parses the JSON and is CPU-testable.

The JSON (TensorRT 8.6, DETAILED) is {"Layers": [...], "Bindings": [...]}; a layer is
{"Name", "LayerType", "Inputs": [{"Name", "Location", "Dimensions", "Format/Datatype"}],
"Outputs": [...], "ParameterType", "TacticName", ...}. "Format/Datatype" is text such as
"Row major linear FP32", "Row major linear FP16 format", "Channel major INT8 format where ...",
"Row major linear Int32". Fused layers are named "A + B", pointwise fusions "PWN(A, B)", and
Myelin regions {"Name": "{ForeignNode[first...last]}", "LayerType": "Myelin"}: only the
region's first and last node names and its boundary tensors are visible, not the precision
inside it. With LAYER_NAMES_ONLY verbosity the layers are plain strings.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from engine.errors import EngineError, first_line
from engine.layer_groups import layer_group

_DTYPE_RE = re.compile(r"\b(FP32|FP16|BF16|FP8|INT8|UINT8|INT32|INT64|BOOL|Float|Half|Int8|Int32|Int64)\b",
                       re.IGNORECASE)
_DTYPE_NAMES = {"fp32": "fp32", "float": "fp32", "fp16": "fp16", "half": "fp16", "bf16": "bf16", "fp8": "fp8",
                "int8": "int8", "uint8": "uint8", "int32": "int32", "int64": "int64", "bool": "bool"}
COMPUTE_DTYPES = ("fp32", "fp16", "bf16", "fp8", "int8")
_NAME_SPLIT = re.compile(r"\.\.\.|[\s,()\[\]{}+]+")
_MATRIX_WORDS = ("gemm", "matrixmultiply", "convolution", "fullyconnected")


# --- through the backend -----------------------------------------------------------------
def inspect_plan(plan_path: str | Path, plugin_libs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Layer information of an engine file (plugin libraries loaded first, as at run time)."""
    from engine.backend import get_backend
    from engine.plan_file import check_plan_file

    path = check_plan_file(plan_path)
    backend = get_backend()
    backend.load_plugins(plugin_libs)
    return backend.inspect(path.read_bytes(), path)


# --- parsing (CPU) -----------------------------------------------------------------------
def layers_of(layer_info: Mapping[str, Any] | Sequence[Any]) -> list[Any]:
    if isinstance(layer_info, Mapping):
        layers = layer_info.get("Layers", [])
    else:
        layers = layer_info
    if not isinstance(layers, list):
        raise ValueError("layer info has no 'Layers' list")
    return layers


def parse_datatype(fmt: str | None) -> str | None:
    """'Row major linear FP16 format' -> 'fp16'; None when the text names no type."""
    if not fmt:
        return None
    m = _DTYPE_RE.search(str(fmt))
    return _DTYPE_NAMES[m.group(1).lower()] if m else None


def _tensor_dtypes(tensors: Any) -> list[str | None]:
    if not isinstance(tensors, list):
        return []
    return [parse_datatype(t.get("Format/Datatype")) if isinstance(t, Mapping) else None for t in tensors]


def is_myelin(layer: Any) -> bool:
    if not isinstance(layer, Mapping):
        return False
    return layer.get("LayerType") == "Myelin" or str(layer.get("Name", "")).startswith("{ForeignNode[")


def layer_precision(layer: Any) -> str:
    """One word for a layer: its compute precision (fp32/fp16/int8/...), or myelin, reformat, unknown.

    The compute precision is the type of the first input that has a floating or int8
    type (an int8 layer reads int8; it may write fp32), else that of the first output.
    """
    if not isinstance(layer, Mapping):
        return "unknown"
    if is_myelin(layer):
        return "myelin"
    if layer.get("LayerType") == "Reformat" or layer.get("ParameterType") == "Reformat":
        return "reformat"
    ins, outs = _tensor_dtypes(layer.get("Inputs")), _tensor_dtypes(layer.get("Outputs"))
    for d in ins + outs:
        if d in COMPUTE_DTYPES:
            return d
    for d in ins + outs:
        if d is not None:
            return d
    return "unknown"


def layer_name(layer: Any) -> str:
    return layer if isinstance(layer, str) else str(layer.get("Name", "")) if isinstance(layer, Mapping) else ""


def name_parts(name: str) -> list[str]:
    """The network layer names inside a fused engine-layer name ('A + B', 'PWN(A, B)', '{ForeignNode[A...B]}')."""
    return [p for p in _NAME_SPLIT.split(name) if p and p not in ("PWN", "ForeignNode")]


def layer_groups_of(model: str, layer: Any, by_block: bool = False) -> set[str]:
    groups = set()
    for part in name_parts(layer_name(layer)):
        g = layer_group(model, part, by_block)
        if g is not None:
            groups.add(g)
    return groups


def precision_counts(layer_info: Mapping[str, Any] | Sequence[Any], model: str | None = None) -> dict[str, int]:
    """Engine layers per precision word: {'fp32': n, 'fp16': n, 'int8': n, 'myelin': n, 'reformat': n, ...}.

    `model` is accepted for symmetry with group_precisions (the worker passes it); the
    counts do not depend on it.
    """
    return dict(sorted(Counter(layer_precision(l) for l in layers_of(layer_info)).items()))


def group_precisions(model: str, layer_info: Mapping[str, Any] | Sequence[Any],
                     by_block: bool = False) -> dict[str, dict[str, int]]:
    """group -> {precision word: engine layers}; a fused layer counts once for each group it contains.

    Myelin regions count as 'myelin' for the groups of their first and last node only.
    """
    out: dict[str, Counter] = {}
    for layer in layers_of(layer_info):
        prec = layer_precision(layer)
        if prec == "reformat":
            continue
        for g in layer_groups_of(model, layer, by_block):
            out.setdefault(g, Counter())[prec] += 1
    return {g: dict(sorted(c.items())) for g, c in sorted(out.items())}


def _normal_type(layer: Mapping[str, Any]) -> str:
    """LayerType and ParameterType, lower case without separators: 'caskgemmmatrixmultiply matrixmultiply'."""
    return " ".join(re.sub(r"[^a-z]", "", str(layer.get(k, "")).lower()) for k in ("LayerType", "ParameterType"))


def is_matrix_layer(layer: Any) -> bool:
    """A MatMul / Conv / FullyConnected engine layer (fused ones included): where int8 pins apply."""
    return isinstance(layer, Mapping) and any(w in _normal_type(layer) for w in _MATRIX_WORDS)


def _is_unpinned_type(layer: Any) -> bool:
    """Layers precision planning never pins (engine.precision.SKIP_TYPES: casts, shapes, constants...)."""
    from engine.precision import SKIP_TYPES

    if not isinstance(layer, Mapping):
        return False
    words = _normal_type(layer).split()
    return bool(words) and words[0] in {t.replace("_", "").lower() for t in SKIP_TYPES}


def honoured(config: Any, layer_info: Mapping[str, Any] | Sequence[Any]) -> dict[str, Any]:
    """Whether each pinned group of `config` runs at its requested precision in the built engine.

    `config`: a BuildConfig or its dict (result.json's "config"); its model and
    layer_precision are read. `layer_info`: the inspector's JSON (layers.json).
    Returns {"honoured": bool, "groups": {group: {"requested", "seen", "others", "hidden",
    "honoured", "note"}}}: `seen` counts the group's visible engine layers that the pin
    applies to, by precision (for fp16/fp32 every computing layer; for int8 its
    matmul/conv layers, the rest in `others`, see engine.precision); `hidden` counts Myelin
    regions that start or end in the group (their precision is not visible). A group is
    honoured when at least one such layer is visible and all of them run as requested;
    the whole config when every pinned group is (True when nothing is pinned).
    """
    from engine.precision import resolve_group

    if isinstance(config, Mapping):
        model, pins = config["model"], dict(config.get("layer_precision") or {})
    else:
        model, pins = config.model, dict(config.layer_precision)
    seen: dict[str, Counter] = {g: Counter() for g in pins}
    others: dict[str, Counter] = {g: Counter() for g in pins}
    hidden: Counter = Counter()
    unknown: Counter = Counter()
    for layer in layers_of(layer_info):
        prec = layer_precision(layer)
        if prec == "reformat" or _is_unpinned_type(layer):
            continue
        hits = {resolve_group(model, part, pins) for part in name_parts(layer_name(layer))}
        for group in {h[0] for h in hits if h is not None}:     # a fused layer counts once per group
            if prec == "myelin":
                hidden[group] += 1
            elif prec == "unknown":
                unknown[group] += 1
            elif prec in COMPUTE_DTYPES:
                applies = pins[group] != "int8" or is_matrix_layer(layer)
                (seen if applies else others)[group][prec] += 1
    groups = {}
    for group, requested in pins.items():
        s = seen[group]
        ok = bool(s) and set(s) == {requested}
        if ok:
            note = f"{hidden[group]} more inside Myelin regions" if hidden[group] else ""
        elif s:
            note = "runs at " + ", ".join(sorted(set(s) - {requested})) + f" where {requested} was requested"
        elif hidden[group]:
            note = "only inside Myelin regions: precision not visible"
        elif unknown[group]:
            note = "the layer info names no precisions (build with detailed profiling verbosity)"
        else:
            note = "no " + ("matmul/conv " if requested == "int8" else "") + "engine layer of this group"
        groups[group] = {"requested": requested, "seen": dict(sorted(s.items())),
                         "others": dict(sorted(others[group].items())), "hidden": hidden[group],
                         "honoured": ok, "note": note}
    return {"honoured": all(g["honoured"] for g in groups.values()), "groups": groups}


def precision_mismatches(model: str, layer_info: Mapping[str, Any] | Sequence[Any],
                         layer_precision_requested: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Pinned groups that are not `honoured`: {group: {"requested": p, "found": {precision: n}, "note"}}.

    `found` counts every visible layer the pin applies to plus the Myelin regions ({"myelin": n});
    an empty dict means every pinned group's visible layers run as requested.
    """
    check = honoured({"model": model, "layer_precision": dict(layer_precision_requested)}, layer_info)
    out = {}
    for group, g in check["groups"].items():
        if not g["honoured"]:
            found = dict(g["seen"], **({"myelin": g["hidden"]} if g["hidden"] else {}))
            out[group] = {"requested": g["requested"], "found": dict(sorted(found.items())), "note": g["note"]}
    return out


def summary_lines(layer_info: Mapping[str, Any] | Sequence[Any], model: str | None = None) -> list[str]:
    """A short human summary: layer count, per-precision and per-type counts, groups when `model` is given."""
    layers = layers_of(layer_info)
    lines = [f"{len(layers)} engine layers"]
    lines.append("precision: " + ", ".join(f"{k} {v}" for k, v in precision_counts(layer_info).items()))
    types = Counter(l.get("LayerType", "?") if isinstance(l, Mapping) else "?" for l in layers)
    lines.append("types: " + ", ".join(f"{k} {v}" for k, v in types.most_common()))
    if model is not None:
        for g, c in group_precisions(model, layer_info).items():
            lines.append(f"  {g}: " + ", ".join(f"{k} {v}" for k, v in c.items()))
    return lines


def save_layer_info(layer_info: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(layer_info, indent=1))
    return path


def load_layer_info(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise EngineError(f"layer info {path}: {first_line(exc)}") from None
    return data if isinstance(data, dict) else {"Layers": data}
