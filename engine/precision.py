"""Which network layers get which precision: a pure function of layer names and the config.

build.py describes each TensorRT layer as a `LayerDesc` (name, type, output
dtypes) and applies the returned `Assignment`s with `layer.precision` and
`layer.set_output_type`; this module never imports TensorRT.

Group resolution ("most specific wins"): a layer in block i of kind k takes
`layer_precision["block{i}.{k}"]` when present, else `layer_precision[k]`.
So a config may pin a kind everywhere and override single blocks.

INT8 applies to the matrix layers of a group only (`INT8_LAYER_TYPES`: MatMul, Conv,
FullyConnected, whose inputs TensorRT then quantizes). TensorRT 8.6 refuses an engine
where a whole group is pinned INT8 ("PWN(Sigmoid, Mul) requires output to be in floating
point precision"): the pointwise, normalization and softmax layers of an int8 group keep
a float precision, `int8_fallback` when given (fp16 or fp32), else TensorRT's choice among
the float precisions the build enables.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from engine.layer_groups import layer_group

# Layers whose precision is meaningless or harmful to force: shape arithmetic,
# weights, type conversions, checks.
SKIP_TYPES = frozenset({"SHAPE", "CONSTANT", "CAST", "ASSERTION", "CONDITION", "CONDITIONAL_INPUT",
                        "CONDITIONAL_OUTPUT", "TRIP_LIMIT", "ITERATOR", "RECURRENCE", "LOOP_OUTPUT",
                        "QUANTIZE", "DEQUANTIZE", "FILL"})
FLOAT_DTYPES = frozenset({"FLOAT", "HALF", "BF16"})
# layer.precision and set_output_type values, by config name (trt.DataType member names).
DTYPE_OF = {"fp32": "FLOAT", "fp16": "HALF", "int8": "INT8"}
# The layers an int8 group pins INT8 (trt.LayerType member names): those with INT8 kernels
# that quantize their inputs. Every other layer of an int8 group stays in a float precision.
INT8_LAYER_TYPES = frozenset({"MATRIX_MULTIPLY", "CONVOLUTION", "FULLY_CONNECTED"})
NOT_INT8_REASON = "int8 group: not a matmul/conv layer (kept in float)"


@dataclass(frozen=True)
class LayerDesc:
    """The facts about one network layer that precision planning needs."""
    index: int
    name: str
    type: str                                   # trt.LayerType member name, e.g. "MATRIX_MULTIPLY"
    output_dtypes: tuple[str, ...]              # trt.DataType member names, e.g. ("FLOAT",)
    output_is_shape: tuple[bool, ...] = ()      # ITensor.is_shape_tensor per output
    output_is_network_output: tuple[bool, ...] = ()


@dataclass(frozen=True)
class Assignment:
    index: int
    name: str
    group: str
    precision: str                              # fp32 | fp16 | int8
    output_indices: tuple[int, ...]             # outputs that get set_output_type(precision)


@dataclass
class PrecisionPlan:
    assignments: list[Assignment] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)          # reason -> layers in a pinned group left alone
    unmatched_groups: list[str] = field(default_factory=list)      # pinned groups no layer belongs to

    @property
    def counts(self) -> dict[str, int]:
        """precision -> layers requested."""
        out: dict[str, int] = {}
        for a in self.assignments:
            out[a.precision] = out.get(a.precision, 0) + 1
        return out


def resolve_group(model: str, layer_name: str, layer_precision: Mapping[str, str]) -> tuple[str, str] | None:
    """(group, precision) pinned for this layer, or None when its groups are not pinned."""
    if not layer_precision:
        return None
    block = layer_group(model, layer_name, by_block=True)
    if block is not None and block in layer_precision:
        return block, layer_precision[block]
    kind = layer_group(model, layer_name, by_block=False)
    if kind is not None and kind in layer_precision:
        return kind, layer_precision[kind]
    return None


def groups_without_layers(model: str, layer_names: Iterable[str], layer_precision: Mapping[str, str]) -> list[str]:
    """The pinned groups (layer_precision keys) that no layer of `layer_names` resolves to, sorted."""
    used = {hit[0] for name in layer_names for hit in [resolve_group(model, name, layer_precision)] if hit}
    return sorted(set(layer_precision) - used)


def _skip_reason(layer: LayerDesc) -> str | None:
    if layer.type in SKIP_TYPES:
        return f"type {layer.type}"
    if not any(d in FLOAT_DTYPES for d in layer.output_dtypes):
        return "no float output"
    if any(layer.output_is_shape):
        return "shape tensor output"
    return None


def plan_precisions(model: str, layers: Iterable[LayerDesc], layer_precision: Mapping[str, str],
                    int8_fallback: str | None = None) -> PrecisionPlan:
    """Assignments for every layer in a pinned group, minus those it would be wrong to force.

    Output types are set (to the same precision) on float outputs only, and never on
    network outputs (their dtype is the engine's I/O contract) nor for int8 (an int8
    output type would force quantized tensors between layers; the calibrator's scales
    decide those). In an int8 group only INT8_LAYER_TYPES get int8; the group's other
    layers get `int8_fallback` (fp16/fp32) or, when None, are left to TensorRT and
    counted in `skipped` under NOT_INT8_REASON.
    """
    if int8_fallback not in (None, "fp16", "fp32"):
        raise ValueError(f"int8_fallback {int8_fallback!r} must be fp16, fp32 or None")
    plan = PrecisionPlan()
    used: set[str] = set()
    for layer in layers:
        hit = resolve_group(model, layer.name, layer_precision)
        if hit is None:
            continue
        group, precision = hit
        used.add(group)
        reason = _skip_reason(layer)
        if reason is not None:
            plan.skipped[reason] = plan.skipped.get(reason, 0) + 1
            continue
        if precision == "int8" and layer.type not in INT8_LAYER_TYPES:
            if int8_fallback is None:
                plan.skipped[NOT_INT8_REASON] = plan.skipped.get(NOT_INT8_REASON, 0) + 1
                continue
            precision = int8_fallback
        outputs: tuple[int, ...] = ()
        if precision != "int8":
            net_out = layer.output_is_network_output or (False,) * len(layer.output_dtypes)
            outputs = tuple(i for i, d in enumerate(layer.output_dtypes)
                            if d in FLOAT_DTYPES and not net_out[i])
        plan.assignments.append(Assignment(layer.index, layer.name, group, precision, outputs))
    plan.unmatched_groups = sorted(set(layer_precision) - used)
    return plan
