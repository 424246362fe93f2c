"""The graph-pass framework: a registry of named rewrites and the function that applies them.

A pass is a function `apply(graph: gs.Graph) -> int` (sites rewritten) registered
with `@register_pass(...)`; its docstring says what it rewrites and why. Passes
match by structure (op types, shapes, constant values), never by the node names of
one export, so they survive a re-export, both export styles and other shapes, and a
second application rewrites nothing (idempotent).

`apply_passes(model, names)` runs them in order, each followed by cleanup,
toposort and shape inference, bumps the opset when a pass needs a newer op, and
checks the result with onnx.checker. plugins/ registers its rewrites here too, as
kind "plugin" (see plugins/).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence

import onnx
import onnx_graphsurgeon as gs

from workload import registry
from workload.errors import OneLineError
from workload.shapes import MODELS

log = logging.getLogger(__name__)

PASS, PLUGIN = "pass", "plugin"


class PassError(OneLineError, ValueError):
    """A pass request that cannot be honoured: unknown name, wrong model, no site under strict, invalid result."""


@dataclass(frozen=True)
class Pass:
    name: str
    apply: Callable[[gs.Graph], int]
    models: tuple[str, ...]
    doc: str
    kind: str = PASS
    min_opset: int | None = None             # default-domain opset the rewrite needs (e.g. 17 for LayerNormalization)
    domains: tuple[tuple[str, int], ...] = field(default_factory=tuple)   # custom op domains it emits
    creator: tuple[str, str] | None = None   # plugins: (TensorRT plugin creator name, version)

    @property
    def summary(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""


_REGISTRY: dict[str, Pass] = {}


def register_pass(name: str | None = None, *, models: Sequence[str] = MODELS, min_opset: int | None = None,
                  kind: str = PASS, domains: Sequence[tuple[str, int]] = (),
                  creator: tuple[str, str] | None = None):
    """Decorator: register `fn(graph) -> int` as a pass (kind "pass") or plugin rewrite (kind "plugin")."""
    def wrap(fn: Callable[[gs.Graph], int]) -> Callable[[gs.Graph], int]:
        pass_name = name or fn.__name__
        bad = [m for m in models if m not in MODELS]
        if bad:
            raise ValueError(f"pass {pass_name}: unknown model(s) {bad}")
        if not (fn.__doc__ or "").strip():
            raise ValueError(f"pass {pass_name}: needs a docstring saying what it rewrites and why")
        if pass_name in _REGISTRY and _REGISTRY[pass_name].apply is not fn:
            raise ValueError(f"pass {pass_name} is registered twice")
        _REGISTRY[pass_name] = Pass(pass_name, fn, tuple(models), fn.__doc__ or "", kind, min_opset,
                                    tuple(domains), creator)
        return fn
    return wrap


def get_pass(name: str, kind: str | None = None) -> Pass:
    p = _REGISTRY.get(name)
    if p is None or (kind is not None and p.kind != kind):
        known = ", ".join(available(kind=kind)) or "(none)"
        what = "plugin" if kind == PLUGIN else "pass"
        raise PassError(f"unknown {what} {name!r}; known: {known}")
    return p


def available(model: str | None = None, kind: str | None = PASS) -> list[str]:
    if model is not None and not registry.known(model):      # any registered workload; WeNet's passes are theirs
        raise PassError(f"unknown model {model!r}; expected one of {', '.join(registry.names())}")
    return [p.name for p in _REGISTRY.values()
            if (kind is None or p.kind == kind) and (model is None or model in p.models)]


def available_passes(model: str | None = None) -> list[str]:
    """Names of the registered graph passes (those that apply to `model`, if given), in registration order."""
    return available(model, PASS)


# --- opset handling -------------------------------------------------------------
# Ops whose schema changed between opset 13 and 17 only by allowing more types or
# adding attributes whose default keeps the old meaning; relabelling the opset
# leaves them valid and unchanged in meaning.
_COMPATIBLE_UP_TO_17 = {
    "Add", "Sub", "Mul", "Div", "Relu", "Reshape", "Where", "Pow", "Shape", "Identity", "CumSum",
    "BatchNormalization", "ScatterND", "LessOrEqual", "GreaterOrEqual", "LeakyRelu", "PRelu",
    "GRU", "LSTM", "RNN", "If", "Loop", "Scan", "ScatterElements",
}


def default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return 1


def _ensure_opset(graph: gs.Graph, needed: int, pass_name: str) -> None:
    """Raise the graph's default-domain opset to `needed` where that keeps every op's meaning."""
    current = graph.opset
    if current >= needed:
        return
    if current < 13 or needed > 17:
        raise PassError(f"pass {pass_name} needs opset {needed}; cannot relabel a graph at opset {current}")
    from onnx import defs
    changed = set()
    for node in graph.nodes:
        if node.domain not in (None, "", "ai.onnx"):
            continue
        try:
            old = defs.get_schema(node.op, current).since_version
            new = defs.get_schema(node.op, needed).since_version
        except Exception:  # op unknown at the old opset: nothing to compare
            continue
        if old != new and node.op not in _COMPATIBLE_UP_TO_17:
            changed.add(node.op)
    if changed:
        raise PassError(f"pass {pass_name} needs opset {needed}, but {sorted(changed)} change meaning between "
                        f"opset {current} and {needed}")
    log.info("opset %d -> %d for pass %s", current, needed, pass_name)
    graph.opset = needed
    # gs.export_onnx writes import_domains when set; keep the default domain's entry in step
    graph.import_domains = [onnx.helper.make_opsetid(d.domain, needed) if d.domain in ("", "ai.onnx") else d
                            for d in (graph.import_domains or [])] or None


def _add_domains(graph: gs.Graph, domains: Sequence[tuple[str, int]]) -> None:
    imports = list(graph.import_domains or [])
    have = {d.domain for d in imports}
    for domain, version in domains:
        if domain not in have:
            imports.append(onnx.helper.make_opsetid(domain, version))
    graph.import_domains = imports


# --- applying ---------------------------------------------------------------------
def _export(graph: gs.Graph, template: onnx.ModelProto) -> onnx.ModelProto:
    model = gs.export_onnx(graph)
    model.ir_version = max(model.ir_version, template.ir_version) if template.ir_version else model.ir_version
    for attr in ("producer_name", "producer_version", "doc_string", "domain", "model_version"):
        if getattr(template, attr):
            setattr(model, attr, getattr(template, attr))
    del model.metadata_props[:]
    model.metadata_props.extend(template.metadata_props)
    # Re-infer every intermediate shape: a rewrite may have changed ranks upstream
    # of tensors whose old shapes gs would otherwise write back.
    del model.graph.value_info[:]
    return infer_shapes(model)


def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX shape inference (passes read shapes); the model unchanged where inference fails."""
    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # plugin ops have no schema; shapes are a help, not a requirement
        log.debug("shape inference failed: %s", exc)
        return model


def check_model(model: onnx.ModelProto, what: str = "rewritten model") -> None:
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PassError(f"{what} is not a valid ONNX model: {first}") from None


def resolve_passes(names: Sequence[str], kind: str | None = None, model_name: str | None = None) -> list[Pass]:
    """The registered rewrites named, in order: unknown names, repeats and other models' rewrites are errors."""
    passes = [get_pass(n, kind) for n in names]
    dupes = sorted({n for n in names if list(names).count(n) > 1})
    if dupes:
        raise PassError(f"{kind or 'rewrite'} listed more than once: {', '.join(dupes)}")
    if model_name is not None:
        for p in passes:
            if model_name not in p.models:
                raise PassError(f"{p.name} applies to {', '.join(p.models)}, not {model_name}")
    return passes


def run_passes(model: onnx.ModelProto, names: Sequence[str], *, kind: str, strict: bool = False,
               model_name: str | None = None) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Apply the named rewrites of `kind` in order; see apply_passes."""
    passes = resolve_passes(names, kind, model_name)
    sites: dict[str, int] = {}
    current = infer_shapes(model)
    changed = False
    for p in passes:
        graph = gs.import_onnx(current)
        if p.min_opset is not None:
            _ensure_opset(graph, p.min_opset, p.name)
        if p.domains:
            _add_domains(graph, p.domains)
        n = int(p.apply(graph))
        graph.cleanup(remove_unused_graph_inputs=False).toposort()
        sites[p.name] = n
        if n == 0:
            msg = f"{p.kind} {p.name} found no site to rewrite"
            if strict:
                raise PassError(msg)
            log.warning(msg)
            # nothing rewritten: keep the model as it was (no needless opset bump)
            continue
        current = _export(graph, model)
        changed = True
    if not changed:
        return model, sites
    check_model(current)
    return current, sites


def apply_passes(model: onnx.ModelProto, names: Sequence[str], *, strict: bool = False,
                 model_name: str | None = None) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Apply graph passes in the given order; returns the new model and sites rewritten per pass.

    A pass that finds nothing logs a warning and reports 0 (PassError under
    strict=True); an unknown name raises PassError listing the known ones;
    `model_name` ("encoder"/"decoder"), if given, rejects passes for the other model.
    The input model is not modified.
    """
    return run_passes(model, names, kind=PASS, strict=strict, model_name=model_name)
