"""The workloads this process knows: the shipped specs (workload/specs/*.yaml) and those loaded from files.

    from workload import registry
    spec = registry.resolve("my-model.yaml")     # a file: loaded, validated, registered under its name
    spec = registry.resolve("encoder")           # a registered name (or a shipped file's stem, wenet-encoder)
    registry.get("encoder").input_shapes(4, 64)

Every place that used to switch on "encoder"/"decoder" asks `get(model)`; `--model encoder` is
shorthand for the shipped spec of that name. A name is registered once: loading a second spec
under a taken name is an error (unless it is the same spec again, e.g. a trial worker re-reading
the file its tuner loaded).

Layer groups by op type need the ONNX graph: `bind_onnx(name, path)` says which file this
process works on (the tuner's model, the worker's request); without it the spec's own `onnx`
path (work dir `work`) is read.
"""
from __future__ import annotations

from pathlib import Path

from workload.errors import WorkloadError
from workload.groups import GroupMatcher, onnx_op_types
from workload.spec import DEFAULT_WORK, Workload, load_spec

SPEC_DIR = Path(__file__).resolve().parent / "specs"

_SPECS: dict[str, Workload] = {}
_SHIPPED: dict[str, str] = {}            # file stem -> name (wenet-encoder -> encoder)
_ONNX: dict[str, Path] = {}
_MATCHERS: dict[tuple, GroupMatcher] = {}


def _load_shipped() -> None:
    if _SHIPPED:
        return
    for path in sorted(SPEC_DIR.glob("*.yaml")):
        spec = load_spec(path)
        _SPECS.setdefault(spec.name, spec)
        _SHIPPED[path.stem] = spec.name


def shipped_names() -> tuple[str, ...]:
    """Names of the shipped specs, in file order (decoder, encoder)."""
    _load_shipped()
    return tuple(_SHIPPED.values())


def names() -> tuple[str, ...]:
    _load_shipped()
    return tuple(_SPECS)


def known(name: str) -> bool:
    _load_shipped()
    return isinstance(name, str) and name in _SPECS


def get(name: str) -> Workload:
    """The registered workload `name`; WorkloadError naming the known ones."""
    _load_shipped()
    try:
        return _SPECS[name]
    except (KeyError, TypeError):
        raise WorkloadError(f"unknown workload {name!r}; known: {', '.join(_SPECS)} "
                            f"(a spec file of your own: --workload PATH)") from None


def register(spec: Workload) -> Workload:
    """Make `spec` known under its name; the same spec again is a no-op, another under a taken name an error."""
    _load_shipped()
    have = _SPECS.get(spec.name)
    if have is not None and have != spec:
        where = f" ({have.source})" if have.source else ""
        raise WorkloadError(f"{spec.source or 'spec'}: workload name {spec.name!r} is taken by another spec{where}; "
                            f"give yours another name")
    _SPECS.setdefault(spec.name, spec)
    return _SPECS[spec.name]


def resolve(ref: str | Path) -> Workload:
    """A spec file (loaded and registered), a registered name or a shipped file's stem."""
    _load_shipped()
    text = str(ref)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return register(load_spec(path))
    if text in _SPECS:
        return _SPECS[text]
    if text in _SHIPPED:
        return _SPECS[_SHIPPED[text]]
    raise WorkloadError(f"workload {text!r} is neither a spec file nor a known name "
                        f"({', '.join(list(_SPECS) + list(_SHIPPED))})")


def unregister(name: str) -> None:
    """Forget a loaded (not shipped) workload; tests only."""
    if name in _SHIPPED.values():
        raise WorkloadError(f"{name!r} is a shipped workload")
    _SPECS.pop(name, None)
    _ONNX.pop(name, None)


# --- layer groups --------------------------------------------------------------------------
def bind_onnx(name: str, onnx_path: str | Path) -> None:
    """The ONNX file whose op types make `name`'s groups (layer groups by op type only)."""
    get(name)
    _ONNX[name] = Path(onnx_path)


def matcher(name: str) -> GroupMatcher:
    """The layer -> group matcher of a workload (by op type: of its bound ONNX, cached while unchanged)."""
    spec = get(name)
    if not spec.layer_groups.by_op_type:
        key: tuple = (name, spec.layer_groups)
    else:
        path = _ONNX.get(name) or spec.onnx_path(DEFAULT_WORK)
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            stamp = None
        key = (name, spec.layer_groups, str(path), stamp)
    if key not in _MATCHERS:
        ops = onnx_op_types(path) if spec.layer_groups.by_op_type else None
        _MATCHERS[key] = GroupMatcher(spec.layer_groups, ops)
    return _MATCHERS[key]


def group_names(name: str) -> tuple[str, ...]:
    """The kinds of layer groups of a workload, in the spec's (or, by op type, the graph's) order."""
    return matcher(name).names
