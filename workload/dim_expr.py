"""Tensor dimensions of a workload spec: a fixed size, the batch, or an expression of the case's length.

    dims: [batch, length, 80]                              # speech of the WeNet encoder
    dims: [batch, "((length - 1) // 2 - 1) // 2", 256]     # its encoder_out (T' after the x4 subsampling)

A dimension is one of
  - an integer >= 1: fixed in every profile;
  - "batch": the case's batch (every profile's batch range; padded up where a layout needs it);
  - a string expression of `length` (the case's dynamic length: frames, tokens, pixels) with
    integers and + - * // % ( ): dynamic, and padded up with zeros where a layout needs it;
  - null (outputs only): a size the spec does not state (never trimmed).
Expressions are parsed with `ast` (no eval of arbitrary code): a name other than `length` or
an operator outside that list is refused with one line.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from workload.errors import WorkloadError

BATCH = "batch"
LENGTH = "length"
_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b}


class _Expr:
    """A checked arithmetic expression of `length`."""

    def __init__(self, text: str, where: str) -> None:
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError:
            raise WorkloadError(f"{where}: {text!r} is not an expression of length (e.g. \"length // 4\")") from None
        self.text = text.strip()
        self._check(tree.body, where)
        self._tree = tree.body

    def _check(self, node: ast.AST, where: str) -> None:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            self._check(node.left, where)
            self._check(node.right, where)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            self._check(node.operand, where)
        elif isinstance(node, ast.Name):
            if node.id != LENGTH:
                raise WorkloadError(f"{where}: {self.text!r} uses {node.id!r}; an expression may use only "
                                    f"`length` (and a dimension may be `batch` alone)")
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            pass
        else:
            raise WorkloadError(f"{where}: {self.text!r}: only integers, `length` and + - * // % are allowed")

    def __call__(self, length: int) -> int:
        return self._eval(self._tree, int(length))

    def _eval(self, node: ast.AST, length: int) -> int:
        if isinstance(node, ast.BinOp):
            right = self._eval(node.right, length)
            if right == 0 and isinstance(node.op, (ast.FloorDiv, ast.Mod)):
                raise WorkloadError(f"{self.text!r} divides by zero at length {length}")
            return _OPS[type(node.op)](self._eval(node.left, length), right)
        if isinstance(node, ast.UnaryOp):
            return -self._eval(node.operand, length)
        if isinstance(node, ast.Name):
            return length
        return node.value


@dataclass(frozen=True)
class Dim:
    """One dimension: kind "fixed" (size), "batch", "length" (expr) or "any" (outputs: unstated)."""
    kind: str
    size: int | None = None
    expr: Any = None            # _Expr for kind "length"

    @property
    def text(self) -> Any:
        """The YAML value it came from (for messages and the round trip)."""
        return {"fixed": self.size, "batch": BATCH, "length": getattr(self.expr, "text", None),
                "any": None}[self.kind]

    @property
    def is_plain_length(self) -> bool:
        """`length` itself: the axis a case's length can be read back from."""
        return self.kind == "length" and self.expr.text == LENGTH

    def value(self, batch: int, length: int) -> int:
        if self.kind == "fixed":
            return int(self.size)
        if self.kind == "batch":
            return int(batch)
        if self.kind == "length":
            return self.expr(length)
        raise WorkloadError("an unstated (null) dimension has no value")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dim) and (self.kind, self.text) == (other.kind, other.text)

    def __hash__(self) -> int:
        return hash((self.kind, self.text))


def parse_dim(value: Any, where: str, allow_any: bool = False) -> Dim:
    """A YAML dimension value -> Dim; WorkloadError (one line) naming `where` when it is none."""
    if value is None:
        if allow_any:
            return Dim("any")
        raise WorkloadError(f"{where}: null is allowed for output dimensions only")
    if isinstance(value, bool):
        raise WorkloadError(f"{where}: {value!r} is not a dimension (an integer, batch or an expression of length)")
    if isinstance(value, int):
        if value < 1:
            raise WorkloadError(f"{where}: a fixed dimension must be >= 1, got {value}")
        return Dim("fixed", size=value)
    if isinstance(value, str):
        if value.strip() == BATCH:
            return Dim("batch")
        return Dim("length", expr=_Expr(value, where))
    raise WorkloadError(f"{where}: {value!r} is not a dimension (an integer, batch or an expression of length)")


def parse_dims(values: Any, where: str, allow_any: bool = False) -> tuple[Dim, ...]:
    if not isinstance(values, list):
        raise WorkloadError(f"{where}: dims must be a list, e.g. [batch, length, 80]")
    dims = tuple(parse_dim(v, f"{where}[{i}]", allow_any) for i, v in enumerate(values))
    if sum(d.kind == "batch" for d in dims) > 1:
        raise WorkloadError(f"{where}: at most one dimension may be batch")
    return dims
