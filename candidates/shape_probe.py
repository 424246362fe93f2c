"""Concrete shapes of every tensor at a few probe input shapes, from one onnxruntime run each.

ONNX shape inference loses the shapes after the exporter's first data-dependent
Reshape (its target is Shape->Gather->Concat arithmetic), so passes that need a
rank, a static dimension or "this is the same dimension as that one" run the
graph instead: every dynamic input dimension gets a different value in each probe
(dims sharing a symbolic name, such as B of speech and speech_lengths, share the
value). A dimension equal in all probes is static; two dimensions equal in all
probes are the same function of the inputs (the dims of these models are sums,
products and floor divisions of B and T; distinct such functions do not agree at
three unrelated points). Rewrites that rely on it are checked in onnxruntime at
other shapes by the tests.
"""
from __future__ import annotations

import logging

import numpy as np
import onnx
import onnx_graphsurgeon as gs

log = logging.getLogger(__name__)

# Values given to symbolic input dims, one tuple per probe; chosen to be unrelated
# (no two equal, no small multiples), from short (19 frames -> 4 after the x4
# subsampling) to long, so a piecewise function of a dim (a clamp) shows up as dynamic.
_PROBE_VALUES = ((3, 19, 29, 41), (5, 83, 7, 53), (2, 263, 43, 11))
_SMALL = 64   # integer tensors up to this many elements keep their values
_INTEGER_TYPES = {onnx.TensorProto.INT8, onnx.TensorProto.INT16, onnx.TensorProto.INT32, onnx.TensorProto.INT64,
                  onnx.TensorProto.UINT8, onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64}


class ProbeError(RuntimeError):
    pass


class ShapeProbe:
    """shape(tensor) -> static shape (None where dynamic); dims(tensor) -> per-probe concrete shapes."""

    def __init__(self, graph: gs.Graph):
        self._shapes: dict[str, list[tuple[int, ...]]] = {}
        self._values: dict[str, list[np.ndarray]] = {}   # small integer tensors (shape arithmetic)
        self._shape_only = {name for name, only in shape_only(graph).items() if only}
        try:
            self._run(graph)
        except Exception as exc:  # a probe is an aid: passes fall back to their other checks
            log.warning("shape probe failed (%s: %s); shape-dependent rewrites are skipped",
                        type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            self._shapes = {}

    def _feeds(self, graph: gs.Graph, probe: int) -> dict[str, np.ndarray]:
        names: dict[str, int] = {}
        values = _PROBE_VALUES[probe]
        feeds = {}
        rng = np.random.default_rng(probe)
        for t in graph.inputs:
            if t.shape is None or t.dtype is None:
                raise ProbeError(f"input {t.name} has no shape or type")
            dims = []
            for d in t.shape:
                if isinstance(d, int) and d > 0:
                    dims.append(d)
                    continue
                key = d if isinstance(d, str) and d else f"__anon{len(names)}"
                if key not in names:
                    names[key] = len(names)
                dims.append(values[names[key] % len(values)])
            dtype = np.dtype(t.dtype)
            if dtype.kind == "f":
                feeds[t.name] = rng.standard_normal(dims).astype(dtype)
            elif dtype.kind == "b":
                feeds[t.name] = np.ones(dims, dtype)
            else:
                feeds[t.name] = np.ones(dims, dtype)  # valid index and length everywhere
        return feeds

    def _run(self, graph: gs.Graph) -> None:
        import onnxruntime as ort

        graph = graph.copy()
        # Plugin ops (custom domains) cannot run in onnxruntime: probe the part of the
        # graph that does not depend on them.
        standard = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft")
        blocked: set[int] = set()
        kept = []
        for node in graph.toposort().nodes:
            if (node.domain or "") not in standard or any(id(t) in blocked for t in node.inputs):
                blocked.update(id(t) for t in node.outputs)
            else:
                kept.append(node)
        if len(kept) != len(graph.nodes):
            graph.nodes = kept
            graph.outputs = [t for t in graph.outputs if id(t) not in blocked]
        model = gs.export_onnx(graph, do_type_check=False)
        del model.graph.value_info[:]
        model = onnx.shape_inference.infer_shapes(model)
        types = {vi.name: vi.type for vi in list(model.graph.value_info) + list(model.graph.output)}
        have = {o.name for o in model.graph.output}
        taken = {n for node in model.graph.node for n in node.output} | {i.name for i in model.graph.input}
        # Integer tensors (shape arithmetic) come out whole, for their values; of every other tensor
        # only its Shape: handing every float intermediate to numpy made the probe ~5x slower.
        shape_of: dict[str, str] = {}           # the added Shape output -> the tensor it measures
        shape_nodes = []
        for node in model.graph.node:
            for name in node.output:
                if name and name not in have and name in types and types[name].HasField("tensor_type"):
                    elem = types[name].tensor_type.elem_type
                    out = name
                    if elem not in _INTEGER_TYPES:
                        out = f"{name}__probe_shape"
                        while out in taken:
                            out += "_"
                        taken.add(out)
                        shape_nodes.append(onnx.helper.make_node("Shape", [name], [out]))
                        shape_of[out], elem = name, onnx.TensorProto.INT64
                    vi = onnx.ValueInfoProto()
                    vi.name = out
                    vi.type.tensor_type.elem_type = elem
                    model.graph.output.append(vi)
                    have.add(name)
        model.graph.node.extend(shape_nodes)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 3
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        for probe in range(len(_PROBE_VALUES)):
            feeds = self._feeds(graph, probe)
            outs = sess.run(names, feeds)
            for name, value in list(zip(names, outs)) + list(feeds.items()):
                if name in shape_of:
                    self._shapes.setdefault(shape_of[name], []).append(tuple(int(d) for d in value))
                    continue
                self._shapes.setdefault(name, []).append(tuple(np.shape(value)))
                value = np.asarray(value)
                if value.dtype.kind in "iu" and value.size <= _SMALL:
                    self._values.setdefault(name, []).append(value.copy())

    @property
    def ok(self) -> bool:
        return bool(self._shapes)

    def dims(self, t: gs.Tensor) -> list[tuple[int, ...]] | None:
        if isinstance(t, gs.Constant):
            return [tuple(t.values.shape)] * len(_PROBE_VALUES)
        got = self._shapes.get(t.name)
        return got if got is not None and len(got) == len(_PROBE_VALUES) else None

    def rank(self, t: gs.Tensor) -> int | None:
        d = self.dims(t)
        return None if d is None or len({len(s) for s in d}) != 1 else len(d[0])

    def shape(self, t: gs.Tensor) -> list[int | None] | None:
        """Static dims as ints, dynamic ones as None."""
        d = self.dims(t)
        if d is None or self.rank(t) is None:
            return None
        return [d[0][i] if all(s[i] == d[0][i] for s in d) else None for i in range(len(d[0]))]

    def dim_values(self, t: gs.Tensor, i: int) -> tuple[int, ...] | None:
        d = self.dims(t)
        if d is None or self.rank(t) is None or not -len(d[0]) <= i < len(d[0]):
            return None
        return tuple(s[i] for s in d)

    def is_shape_only(self, t: gs.Tensor) -> bool:
        """The tensor depends on the graph inputs only through Shape ops (not on their values)."""
        return isinstance(t, gs.Constant) or t.name in self._shape_only

    def values(self, t: gs.Tensor) -> list[np.ndarray] | None:
        """Per-probe values of a small integer tensor computed from shapes only, else None.

        Values that depend on input values (lengths, token ids) are not returned: the
        probe feeds are arbitrary, so agreement between probes would mean nothing.
        """
        if isinstance(t, gs.Constant):
            return [np.asarray(t.values)] * len(_PROBE_VALUES)
        if t.name not in self._shape_only:
            return None
        got = self._values.get(t.name)
        return got if got is not None and len(got) == len(_PROBE_VALUES) else None


def shape_only(graph: gs.Graph) -> dict[str, bool]:
    """tensor name -> True when its value depends on the graph inputs only through Shape ops."""
    inputs = {id(t) for t in graph.inputs}
    known: dict[int, bool] = {}

    def only(t: gs.Tensor) -> bool:
        if isinstance(t, gs.Constant) or not t.name:
            return True
        if id(t) in inputs:
            return False
        return known.get(id(t), False)   # unconnected variables: unknown

    names: dict[str, bool] = {}
    for node in graph.toposort().nodes:
        value = node.op == "Shape" or all(only(i) for i in node.inputs)
        for out in node.outputs:
            known[id(out)] = value
            names[out.name] = value
    return names
