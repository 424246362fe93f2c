"""Layer groups of a workload: the unit of per-layer precision.

Two ways a spec assigns a TensorRT layer (named after its ONNX node) to a group:
  - patterns: ordered (group, regex) pairs, the first whose regex is found in the layer name
    wins (WeNet: `/encoders.3/feed_forward/w_1/MatMul` -> feed_forward); an optional `block`
    regex whose first group is a block index gives `block3.feed_forward` at block granularity;
  - op_type (the structural default): one group per ONNX op type of the graph (`Conv`,
    `MatMul`, `Softmax`, ...), read from the ONNX file: a layer whose name is a node's name,
    or starts with it followed by a non-alphanumeric character (TensorRT's suffixes), is in
    that node's op type's group. Groups are in the order their first node appears.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from workload.errors import WorkloadError

# Op types that are never worth a precision dimension: shape arithmetic, constants, casts.
NOT_GROUPED = frozenset({"Constant", "ConstantOfShape", "Shape", "Cast", "Identity", "Size", "Range",
                         "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Gather", "Concat", "Slice",
                         "Expand", "Transpose", "Equal", "Less", "Greater", "Not", "And", "Or", "Where"})
_SEPARATOR = re.compile(r"[^A-Za-z0-9]")


@dataclass(frozen=True)
class LayerGroups:
    """What the spec says: `patterns` (empty: by op type) and the block regex (or None)."""
    patterns: tuple[tuple[str, str], ...] = ()
    block: str | None = None

    @property
    def by_op_type(self) -> bool:
        return not self.patterns

    def to_dict(self) -> dict:
        out: dict = {"by": "op_type"} if self.by_op_type else {
            "groups": [{"name": g, "pattern": p} for g, p in self.patterns]}
        if self.block:
            out["block"] = self.block
        return out


def parse_groups(data, where: str) -> LayerGroups:
    """The spec's `layer_groups` (absent, "op_type", {by: op_type} or {groups: [...], block: REGEX})."""
    if data is None or data == "op_type":
        return LayerGroups()
    if not isinstance(data, dict):
        raise WorkloadError(f"{where}: expected op_type or a mapping with groups (and block)")
    unknown = sorted(set(data) - {"by", "groups", "block"})
    if unknown:
        raise WorkloadError(f"{where}: unknown key(s) {unknown}; known: block, by, groups")
    by = data.get("by", "patterns" if "groups" in data else "op_type")
    if by not in ("op_type", "patterns"):
        raise WorkloadError(f"{where}.by: {by!r} is not op_type or patterns")
    block = data.get("block")
    if block is not None:
        _compile(block, f"{where}.block")
        if not isinstance(block, str) or re.compile(block).groups < 1:
            raise WorkloadError(f"{where}.block: {block!r} needs one regex group capturing the block index")
    if by == "op_type":
        if data.get("groups"):
            raise WorkloadError(f"{where}: groups are for by: patterns, not op_type")
        return LayerGroups(block=block)
    groups = data.get("groups")
    if not isinstance(groups, list) or not groups:
        raise WorkloadError(f"{where}.groups: expected a non-empty list of {{name, pattern}}")
    pairs = []
    for i, g in enumerate(groups):
        w = f"{where}.groups[{i}]"
        if not isinstance(g, dict) or set(g) != {"name", "pattern"}:
            raise WorkloadError(f"{w}: expected {{name: GROUP, pattern: REGEX}}")
        name, pattern = g["name"], g["pattern"]
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise WorkloadError(f"{w}.name: {name!r} must be an identifier (letters, digits, _)")
        _compile(pattern, f"{w}.pattern")
        pairs.append((name, pattern))
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise WorkloadError(f"{where}.groups: names repeat: {names}")
    return LayerGroups(tuple(pairs), block)


def _compile(pattern, where: str) -> re.Pattern:
    if not isinstance(pattern, str):
        raise WorkloadError(f"{where}: {pattern!r} must be a regular expression string")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise WorkloadError(f"{where}: {pattern!r} is not a regular expression ({exc})") from None


def onnx_op_types(onnx_path: str | Path) -> dict[str, str]:
    """{node name: op type} of an ONNX file, in graph order (unnamed nodes left out)."""
    import onnx

    path = Path(onnx_path)
    if not path.is_file():
        raise WorkloadError(f"layer groups by op type need the ONNX model, and {path} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise WorkloadError(f"cannot read ONNX model {path} for its op types: {str(exc).splitlines()[0]}") from None
    return {n.name: n.op_type for n in model.graph.node if n.name}


class GroupMatcher:
    """layer name -> group for one workload (and, by op type, one ONNX graph)."""

    def __init__(self, spec: LayerGroups, op_types: dict[str, str] | None = None) -> None:
        self.spec = spec
        self._block = re.compile(spec.block) if spec.block else None
        if spec.by_op_type:
            if op_types is None:
                raise WorkloadError("layer groups by op type need the ONNX graph's op types")
            self._ops = {n: t for n, t in op_types.items() if t not in NOT_GROUPED}
            self.names = tuple(dict.fromkeys(self._ops.values()))
            self._compiled: list[tuple[str, re.Pattern]] = []
        else:
            self._ops = {}
            self.names = tuple(g for g, _ in spec.patterns)
            self._compiled = [(g, re.compile(p)) for g, p in spec.patterns]

    def kind_of(self, layer_name: str) -> str | None:
        if not self.spec.by_op_type:
            for group, pattern in self._compiled:
                if pattern.search(layer_name):
                    return group
            return None
        if layer_name in self._ops:
            return self._ops[layer_name]
        for m in reversed(list(_SEPARATOR.finditer(layer_name))):
            if layer_name[:m.start()] in self._ops:
                return self._ops[layer_name[:m.start()]]
        return None

    def group_of(self, layer_name: str, by_block: bool = False) -> str | None:
        """The group of a layer, or None for layers outside every group (shape math, I/O glue)."""
        kind = self.kind_of(layer_name)
        if kind is not None and by_block and self._block is not None:
            m = self._block.search(layer_name)
            if m:
                return f"block{m.group(1)}.{kind}"
        return kind

    def count_blocks(self, node_names) -> int:
        """1 + the largest block index among `node_names`; 0 without a block regex or a match."""
        if self._block is None:
            return 0
        found = {int(m.group(1)) for n in node_names for m in [self._block.search(n)] if m}
        return max(found) + 1 if found else 0
