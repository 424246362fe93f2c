"""Small onnx-graphsurgeon helpers shared by the passes: constants, neighbours, scopes, names.

Passes match by structure (op types, constant values, shapes), so these helpers
read values and walk producers/consumers; none of them looks at node names except
`scope_of`, which only copies the scope onto new nodes (engine/layer_groups.py
assigns precision groups from it).
"""
from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import onnx_graphsurgeon as gs


# --- constants ----------------------------------------------------------------
def const_value(tensor: gs.Tensor | None) -> np.ndarray | None:
    """The value of a constant tensor (initializer or Constant-node output), else None."""
    if tensor is None:
        return None
    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    node = producer(tensor)
    if node is not None and node.op == "Constant" and "value" in node.attrs:
        value = node.attrs["value"]
        if isinstance(value, gs.Constant):
            return np.asarray(value.values)
    return None




def scalar_value(tensor: gs.Tensor | None) -> float | None:
    """A constant holding exactly one element (any rank), as a Python float."""
    value = const_value(tensor)
    if value is None or value.size != 1:
        return None
    return float(value.reshape(-1)[0])


def is_scalar(tensor: gs.Tensor | None, expected: float, rtol: float = 1e-6, atol: float = 0.0) -> bool:
    value = scalar_value(tensor)
    return value is not None and bool(np.isclose(value, expected, rtol=rtol, atol=atol))


def ints(tensor: gs.Tensor | None) -> list[int] | None:
    """An integer constant as a flat list (Reshape targets, axes, indices)."""
    value = const_value(tensor)
    if value is None or not np.issubdtype(value.dtype, np.integer):
        return None
    return [int(v) for v in value.reshape(-1)]


# --- neighbours ---------------------------------------------------------------
def producer(tensor: gs.Tensor | None, op: str | Sequence[str] | None = None) -> gs.Node | None:
    """The node writing `tensor` (optionally only if its op type is `op` or in `op`)."""
    if tensor is None or not tensor.inputs:
        return None
    node = tensor.inputs[0]
    if op is not None and node.op not in ((op,) if isinstance(op, str) else op):
        return None
    return node




def only_consumer(tensor: gs.Tensor, op: str | Sequence[str] | None = None) -> gs.Node | None:
    """The single node reading `tensor` (None if zero or several readers, or a graph output)."""
    if len(tensor.outputs) != 1:
        return None
    node = tensor.outputs[0]
    if op is not None and node.op not in ((op,) if isinstance(op, str) else op):
        return None
    return node




def split_const(node: gs.Node) -> tuple[gs.Tensor, np.ndarray] | tuple[None, None]:
    """For a binary node with one constant operand: (the variable operand, the constant value)."""
    if len(node.inputs) != 2:
        return None, None
    a, b = node.inputs
    va, vb = const_value(a), const_value(b)
    if vb is not None and va is None:
        return a, vb
    if va is not None and vb is None:
        return b, va
    return None, None








# --- rewiring -----------------------------------------------------------------
def match_linear(matmul: gs.Node | None) -> tuple[gs.Node, np.ndarray, np.ndarray] | None:
    """MatMul(x, W[k, n]) -> Add(b[n]), the Add the MatMul's only reader: (add, W, b) or None."""
    if matmul is None or matmul.op != "MatMul":
        return None
    w = const_value(matmul.inputs[1])
    if w is None or w.ndim != 2:
        return None
    add = only_consumer(matmul.outputs[0], "Add")
    if add is None:
        return None
    t, b = split_const(add)
    if t is not matmul.outputs[0] or b is None or b.size != w.shape[1] or b.shape[-1] != w.shape[1]:
        return None
    return add, w, b


def replace_uses(graph: gs.Graph, old: gs.Tensor, new: gs.Tensor) -> None:
    """Make every reader of `old` read `new`; a graph output keeps its name (and moves to `new`)."""
    for node in list(old.outputs):
        for i, t in enumerate(node.inputs):
            if t is old:
                node.inputs[i] = new
    if any(t is old for t in graph.outputs):
        name, dtype, shape = old.name, old.dtype, old.shape
        old.name = name + "__replaced"
        new.name = name
        if dtype is not None:
            new.dtype = dtype
        if shape is not None and new.shape is None:
            new.shape = shape
        graph.outputs = [new if t is old else t for t in graph.outputs]




# --- names and scopes -----------------------------------------------------------
def scope_of(nodes: Sequence[gs.Node]) -> str:
    """The common module scope of nodes named like `/encoder/encoders.3/norm_ff/ReduceMean`.

    Export-dependent only in that it copies whatever scope the export wrote; an
    unnamed graph gives "".
    """
    parts = [n.name.split("/")[:-1] for n in nodes if n.name and n.name.startswith("/")]
    if not parts:
        return ""
    common = []
    for level in zip(*parts):
        if any(p != level[0] for p in level):
            break
        common.append(level[0])
    return "/".join(common)


class Namer:
    """Unique node and tensor names for one graph, built as `<scope>/<pass>/<op>`."""

    def __init__(self, graph: gs.Graph, pass_name: str):
        self.pass_name = pass_name
        self.node_names = {n.name for n in graph.nodes}
        self.tensor_names = set(graph.tensors().keys())

    def _unique(self, base: str, taken: set[str]) -> str:
        name = base
        for i in itertools.count(1):
            if name not in taken:
                break
            name = f"{base}_{i}"
        taken.add(name)
        return name

    def node(self, scope: str, op: str) -> str:
        return self._unique(f"{scope}/{self.pass_name}/{op}", self.node_names)

    def tensor(self, scope: str, what: str) -> str:
        return self._unique(f"{scope}/{self.pass_name}/{what}", self.tensor_names)


class Builder:
    """Adds nodes and constants to a graph under one scope, with unique names."""

    def __init__(self, graph: gs.Graph, namer: Namer, scope: str):
        self.graph, self.namer, self.scope = graph, namer, scope

    def const(self, what: str, value: np.ndarray | Sequence | float | int, dtype=None) -> gs.Constant:
        arr = np.asarray(value, dtype=dtype)
        return gs.Constant(self.namer.tensor(self.scope, what), arr)

    def op(self, op: str, inputs: Sequence[gs.Tensor], attrs: dict | None = None, *, n_out: int = 1,
           dtype=None, shape=None, domain: str | None = None, outputs: Sequence[gs.Tensor] | None = None):
        """One new node; returns its output (or the list of outputs when n_out > 1)."""
        if outputs is None:
            outputs = [gs.Variable(self.namer.tensor(self.scope, f"{op}_output_{i}"), dtype=dtype, shape=shape)
                       for i in range(n_out)]
        node = gs.Node(op=op, name=self.namer.node(self.scope, op), attrs=dict(attrs or {}),
                       inputs=list(inputs), outputs=list(outputs), domain=domain)
        self.graph.nodes.append(node)
        return outputs[0] if len(outputs) == 1 else list(outputs)


# --- common subexpressions --------------------------------------------------------
_NONDETERMINISTIC = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                     "Bernoulli", "Dropout"}


def _value_key(v):
    if isinstance(v, gs.Constant):
        v = v.values
    if isinstance(v, np.ndarray):
        return ("array", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, (list, tuple)):
        return tuple(_value_key(x) for x in v)
    if isinstance(v, gs.Graph):
        return ("graph", id(v))
    return v


def dedup_nodes(graph: gs.Graph, select=lambda node: True) -> int:
    """Merge nodes computing the same thing (same op, attributes and inputs; constants by value).

    Visits nodes in topological order so that merged outputs make their readers
    identical too. Returns the number of nodes merged away, not counting Constant
    nodes (merged too, so that their readers can merge).
    """
    graph.toposort()
    seen: dict = {}
    merged = 0
    outputs = {id(t) for t in graph.outputs}
    for node in list(graph.nodes):
        if node.op in _NONDETERMINISTIC or not node.outputs or not select(node):
            continue
        if any(id(o) in outputs for o in node.outputs):
            continue
        inputs = tuple(_value_key(t) if isinstance(t, gs.Constant) else ("tensor", id(t)) for t in node.inputs)
        attrs = tuple(sorted((k, _value_key(v)) for k, v in node.attrs.items()))
        key = (node.op, node.domain or "", attrs, inputs, len(node.outputs))
        first = seen.get(key)
        if first is None:
            seen[key] = node
            continue
        for mine, theirs in zip(node.outputs, first.outputs):
            replace_uses(graph, mine, theirs)
        node.outputs.clear()
        merged += node.op != "Constant"
    return merged
