"""The group names the precision seeds and strategies use, from a workload spec's `precision` section.

The WeNet specs name them (norm, softmax, attention, ...). A spec that leaves a key out gets the
structural default: for layer groups by op type, the op types that overflow FP16 or sum long
reductions (FP32) and the matrix op types (INT8); for named patterns, none. `groups` are the
workload's group kinds (workload.registry.group_names), so a default never names an absent group.
"""
from __future__ import annotations

from typing import Sequence

from workload.spec import Workload

# Exponentials, logs, squares and long sums: what FP16's range (65504) and ~3 digits hurt.
FP32_OP_TYPES = ("Softmax", "LogSoftmax", "LayerNormalization", "GroupNormalization", "InstanceNormalization",
                 "ReduceMean", "ReduceSum", "ReduceL2", "ReduceLogSumExp", "Pow", "Sqrt", "Exp", "Log", "Erf", "Div")
INT8_OP_TYPES = ("Conv", "ConvTranspose", "MatMul", "Gemm")
RULE_OP_TYPES = (("norms", ("LayerNormalization", "GroupNormalization", "InstanceNormalization", "ReduceMean",
                            "ReduceSum", "ReduceL2", "Pow", "Sqrt", "Div")),
                 ("softmax", ("Softmax", "LogSoftmax", "Exp", "Log", "ReduceLogSumExp")))


def _present(names: Sequence[str], groups: Sequence[str]) -> tuple[str, ...]:
    return tuple(n for n in names if n in groups)


def keep_fp32_groups(spec: Workload, groups: Sequence[str]) -> tuple[str, ...]:
    """The `mixed` seed's FP32 groups."""
    if spec.precision.keep_fp32 is not None:
        return _present(spec.precision.keep_fp32, groups)
    return _present(FP32_OP_TYPES, groups) if spec.layer_groups.by_op_type else ()


def int8_groups(spec: Workload, groups: Sequence[str]) -> tuple[str, ...]:
    """The groups the rules strategy makes INT8 (their matrix layers)."""
    if spec.precision.int8_groups is not None:
        return _present(spec.precision.int8_groups, groups)
    return _present(INT8_OP_TYPES, groups) if spec.layer_groups.by_op_type else ()


def graph_order(spec: Workload, groups: Sequence[str]) -> tuple[str, ...]:
    """The kinds from input to output when the ONNX cannot be read (else the graph says)."""
    if spec.precision.graph_order is not None:
        return tuple(spec.precision.graph_order)
    return tuple(groups)


def precision_rules(spec: Workload) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Cumulative FP32 rule sets, cheapest first: (name, kinds)."""
    if spec.precision.rules is not None:
        return spec.precision.rules
    return RULE_OP_TYPES if spec.layer_groups.by_op_type else ()
