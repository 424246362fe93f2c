"""The engine inspector's per-layer JSON and what it says about precisions.

`inspect_plan` / `inspect_serialized` need TensorRT (IEngineInspector,
LayerInformationFormat.JSON; the engine must be built with ProfilingVerbosity.DETAILED
for more than layer names). Everything else parses the JSON and is CPU-testable.

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

from engine.errors import EngineError, PlanError, first_line
from engine.layer_groups import layer_group

_DTYPE_RE = re.compile(r"\b(FP32|FP16|BF16|FP8|INT8|UINT8|INT32|INT64|BOOL|Float|Half|Int8|Int32|Int64)\b",
                       re.IGNORECASE)
_DTYPE_NAMES = {"fp32": "fp32", "float": "fp32", "fp16": "fp16", "half": "fp16", "bf16": "bf16", "fp8": "fp8",
                "int8": "int8", "uint8": "uint8", "int32": "int32", "int64": "int64", "bool": "bool"}
COMPUTE_DTYPES = ("fp32", "fp16", "bf16", "fp8", "int8")
_NAME_SPLIT = re.compile(r"\.\.\.|[\s,()\[\]{}+]+")


# --- TensorRT side ------------------------------------------------------------------------
def engine_information(engine: Any, trt: Any) -> dict[str, Any]:
    """The inspector's JSON of a deserialized engine, parsed."""
    if not hasattr(engine, "create_engine_inspector"):
        raise EngineError("this TensorRT has no engine inspector (ICudaEngine.create_engine_inspector)")
    inspector = engine.create_engine_inspector()
    if inspector is None:
        raise EngineError("create_engine_inspector returned nothing")
    text = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    try:
        # TensorRT 8.6 writes raw control characters (newlines of Myelin node names) inside
        # strings ("Invalid control character" on the H200): accept them.
        info = json.loads(text, strict=False)
    except ValueError as exc:
        raise EngineError(f"the inspector's JSON does not parse: {first_line(exc)}") from None
    if isinstance(info, list):              # be lenient: a bare layer list
        info = {"Layers": info}
    return info


def inspect_serialized(blob: bytes, *, trt: Any = None) -> dict[str, Any]:
    """Deserialize a plan held in memory and return its layer information."""
    from engine.trt_compat import get_logger, import_tensorrt

    trt = trt or import_tensorrt()
    runtime = trt.Runtime(get_logger(trt))
    engine = runtime.deserialize_cuda_engine(blob)
    if engine is None:
        raise PlanError("TensorRT could not deserialize the engine (see the TensorRT log)")
    try:
        return engine_information(engine, trt)
    finally:
        del engine, runtime


def inspect_plan(plan_path: str | Path, plugin_libs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Layer information of an engine file (plugin libraries loaded first, as at run time)."""
    from engine.trt_compat import get_logger, import_tensorrt

    trt = import_tensorrt()
    path = Path(plan_path)
    if not path.is_file():
        raise PlanError(f"engine file {path} does not exist")
    from plugins.library import init_builtin_plugins, load_plugin_libraries

    load_plugin_libraries(plugin_libs)
    init_builtin_plugins(get_logger(trt))
    return inspect_serialized(path.read_bytes(), trt=trt)


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


def precision_mismatches(model: str, layer_info: Mapping[str, Any] | Sequence[Any],
                         layer_precision_requested: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Pinned groups whose visible engine layers run at another precision, or that are not visible at all.

    Returns {group: {"requested": p, "found": {precision: n}}}; an empty dict means every
    pinned group's visible layers run as requested. Layers inside Myelin regions are
    not visible: a group seen only there is reported with found {"myelin": n}.
    """
    from engine.precision import resolve_group

    found: dict[str, Counter] = {g: Counter() for g in layer_precision_requested}
    for layer in layers_of(layer_info):
        prec = layer_precision(layer)
        if prec == "reformat":
            continue
        hits = {resolve_group(model, part, layer_precision_requested) for part in name_parts(layer_name(layer))}
        for group in {h[0] for h in hits if h is not None}:      # a fused layer counts once per group
            found[group][prec] += 1
    out = {}
    for group, requested in layer_precision_requested.items():
        c = found[group]
        compute = {p for p in c if p in COMPUTE_DTYPES}
        if compute != {requested}:
            out[group] = {"requested": requested, "found": dict(sorted(c.items()))}
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
