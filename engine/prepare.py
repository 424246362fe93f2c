"""Source ONNX + the config's graph passes and plugin rewrites -> the ONNX that gets built, cached.

The cache key is (source file content hash, pass list, plugin list, rewrite code hash):
trials that differ only in builder knobs reuse one prepared file, and an edited pass
never re-uses a graph its old code made. The code hash (`rewrite_code_hash`) covers the
source of every applied pass/plugin module (the file of `get_pass(name).apply`), the
project modules those import (candidates/, plugins/, workload/, followed through their
imports, package __init__ files aside), candidates/framework.py and candidates/graph.py,
and plugins/rewrites.py when plugins are applied. Beside each prepared
`<model>-<key>.onnx` lies `<model>-<key>.json` with the sites each pass rewrote and the
files the code hash covered. Files are written aside and renamed into place, so
concurrent trials (one per GPU) never read half a file.
"""
from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import BuildConfig
from engine.errors import PrepareError, first_line

PREPARE_VERSION = 2          # bump when the preparation itself changes meaning (2: rewrite code in the key)
PROJECT_ROOT = Path(__file__).resolve().parents[1]
REWRITE_PACKAGES = ("candidates", "plugins", "workload")   # whose modules a pass may use
ALWAYS_HASHED = ("candidates/framework.py", "candidates/graph.py")
LARGE_FILE = 1 << 20         # files above this are hashed once per process (by path, size, mtime)
_DIGESTS: dict[tuple, str] = {}


@dataclass
class PreparedOnnx:
    """The ONNX to build and what the rewrites did. (Not os.PathLike on purpose: callers read .path and .sites.)"""
    path: Path
    sites: dict[str, int] = field(default_factory=dict)
    key: str = ""
    cached: bool = False

    def __str__(self) -> str:
        return str(self.path)


def file_sha256(path: Path) -> str:
    """Content hash of a file; a large one (an ONNX model) is hashed once per process while unchanged."""
    st = os.stat(path)
    memo = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino) if st.st_size > LARGE_FILE else None
    if memo is not None and memo in _DIGESTS:
        return _DIGESTS[memo]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    if memo is not None:
        _DIGESTS[memo] = h.hexdigest()
    return h.hexdigest()


def cache_key(source_hash: str, passes: list[str], plugins: list[str], code_hash: str = "") -> str:
    text = json.dumps({"v": PREPARE_VERSION, "src": source_hash, "passes": list(passes), "plugins": list(plugins),
                       "code": code_hash}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- the code of the rewrites ---------------------------------------------------------------
def _module_file(module: str) -> Path | None:
    """The file of a project module name (no import), or None outside REWRITE_PACKAGES."""
    if module.split(".")[0] not in REWRITE_PACKAGES:
        return None
    base = PROJECT_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path) -> set[str]:
    """Module names a file imports (anywhere in it: lazy imports too), relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    try:
        package = list(path.resolve().relative_to(PROJECT_ROOT).parts[:-1])    # a/b/c.py, a/b/__init__.py: a.b
    except ValueError:
        package = None                        # outside the project: relative imports cannot be ours
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue
                parts = package[:len(package) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)     # `from pkg import module`
    return names


def rewrite_sources(files: list[Path]) -> list[Path]:
    """`files` and every project module they import, transitively; package __init__ files are
    left out (they only gather modules: following them would tie a pass to every other pass)."""
    seen: set[Path] = set()
    todo = [Path(f).resolve() for f in files]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imported_modules(path):
            dep = _module_file(module)
            if dep is not None and dep.name != "__init__.py" and dep.resolve() not in seen:
                todo.append(dep.resolve())
    return sorted(seen)


def rewrite_files(passes: list[str], plugins: list[str]) -> list[Path]:
    """The source files whose code decides what `passes` then `plugins` do to a graph."""
    from candidates.framework import PASS, PLUGIN, get_pass

    roots = [PROJECT_ROOT / f for f in ALWAYS_HASHED]
    if plugins:
        import plugins as _registers_plugin_rewrites  # noqa: F401

        roots.append(PROJECT_ROOT / "plugins" / "rewrites.py")
    for kind, names in ((PASS, passes), (PLUGIN, plugins)):
        for name in names:
            roots.append(Path(inspect.getsourcefile(get_pass(name, kind).apply)))
    return rewrite_sources(roots)


def rewrite_code_hash(passes: list[str], plugins: list[str]) -> tuple[str, list[str]]:
    """(hash of the rewrite code for these passes and plugins, the files it covers, repo-relative)."""
    h = hashlib.sha256()
    names = []
    for path in rewrite_files(passes, plugins):
        try:
            name = str(path.relative_to(PROJECT_ROOT))
        except ValueError:
            name = str(path)
        names.append(name)
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest(), names


def _atomic_write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


# --- checks before any work (engine build, tune): nothing here writes -------------------------
def check_rewrites(config: BuildConfig) -> None:
    """Every pass and plugin rewrite of the config is registered, listed once and for its model (PassError)."""
    if not config.passes and not config.plugins:
        return
    from candidates.framework import PASS, PLUGIN, resolve_passes

    if config.passes:
        resolve_passes(config.passes, PASS, config.model)
    if config.plugins:
        import plugins  # noqa: F401  (registers the plugin rewrites)
        resolve_passes(config.plugins, PLUGIN, config.model)


def source_node_names(src_onnx: str | Path, model: str) -> list[str]:
    """The node names of a readable source ONNX of `model` (its inputs are the model's); else a PrepareError."""
    import onnx

    from workload import registry

    src = Path(src_onnx)
    if not src.is_file():
        raise PrepareError(f"ONNX model {src} does not exist (export it with `python -m workload export`)")
    try:
        graph = onnx.load(str(src), load_external_data=False).graph
    except Exception as exc:
        raise PrepareError(f"cannot read ONNX model {src}: {first_line(exc)}") from None
    inputs = sorted(i.name for i in graph.input if i.name not in {t.name for t in graph.initializer})
    expected = sorted(registry.get(model).input_names)
    if inputs != expected:
        raise PrepareError(f"{src} is not the {model} model: its inputs are {inputs}, the {model}'s {expected}")
    return [n.name for n in graph.node]


def check_build(config: BuildConfig, src_onnx: str | Path) -> None:
    """What a build of `config` from `src_onnx` would fail on, or build wrongly, found before any work:
    unknown rewrites, an unreadable or foreign ONNX, a layer_precision group that matches no node."""
    from engine.precision import groups_without_layers

    check_rewrites(config)
    names = source_node_names(src_onnx, config.model)
    unmatched = groups_without_layers(config.model, names, config.layer_precision)
    if unmatched:
        raise PrepareError(f"layer_precision group(s) {', '.join(unmatched)} match no layer of {src_onnx}")


def prepare_onnx(src_onnx: str | Path, config: BuildConfig, cache_dir: str | Path) -> PreparedOnnx:
    """The ONNX for `config`: the source itself when there is nothing to rewrite, else a cached rewrite."""
    src = Path(src_onnx)
    if not src.is_file():
        raise PrepareError(f"ONNX model {src} does not exist (export it with `python -m workload export`)")
    if not config.passes and not config.plugins:
        return PreparedOnnx(src, {}, "", False)

    code_hash, code_files = rewrite_code_hash(config.passes, config.plugins)
    key = cache_key(file_sha256(src), config.passes, config.plugins, code_hash)
    cache = Path(cache_dir)
    out = cache / f"{config.model}-{key}.onnx"
    meta_path = out.with_suffix(".json")
    if out.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            return PreparedOnnx(out, {k: int(v) for k, v in meta["sites"].items()}, key, True)
        except (ValueError, KeyError, TypeError):
            pass            # a damaged sidecar: prepare again

    import onnx

    from candidates import apply_passes

    try:
        model = onnx.load(str(src))
    except Exception as exc:
        raise PrepareError(f"cannot read ONNX model {src}: {first_line(exc)}") from None
    sites: dict[str, int] = {}
    if config.passes:
        model, s = apply_passes(model, config.passes, model_name=config.model)
        sites.update(s)
    if config.plugins:
        from plugins import apply_plugins

        model, s = apply_plugins(model, config.plugins, model_name=config.model)
        sites.update(s)

    cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, out)
    _atomic_write_json(meta_path, {"source": str(src), "model": config.model, "passes": list(config.passes),
                                   "plugins": list(config.plugins), "sites": sites, "key": key,
                                   "version": PREPARE_VERSION, "code_hash": code_hash, "code_files": code_files})
    return PreparedOnnx(out, sites, key, False)
