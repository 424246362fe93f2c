"""The structure: imports only run down the layers of ARCHITECTURE.md, no import circles, no module over 400 lines."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# ARCHITECTURE.md's order: a module may import its own package and the ones with a smaller rank.
RANK = {"workload": 0, "scoring": 1, "candidates": 2, "plugins": 3, "engine": 4, "evaluate": 5, "search": 6,
        "bench": 7}
MAX_LINES = 400


def project_modules() -> dict[str, Path]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        rel = p.relative_to(ROOT)
        if rel.parts[0] in RANK or rel.name == "evaluate.py" and len(rel.parts) == 1:
            parts = list(rel.with_suffix("").parts)
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def imports_of(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Project modules `name` imports anywhere (module level or inside functions: lazy imports count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = project_modules()
    return {m: imports_of(m, p, mods) for m, p in mods.items()}


def test_imports_run_down_the_layers(graph):
    up = [f"{m} -> {n}" for m, deps in graph.items() for n in deps
          if RANK[n.split(".")[0]] > RANK[m.split(".")[0]]]
    assert not up, up


def test_no_import_circles(graph):
    index, low, stack, on, circles = {}, {}, [], set(), []

    def visit(v):                       # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, circles


def test_the_checker_sees_a_circle_and_an_upward_import(tmp_path):
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "a.py").write_text("from engine import b\nimport search.cli\n")
    mods = {"engine.a": tmp_path / "engine" / "a.py", "engine.b": tmp_path / "b.py", "search.cli": tmp_path / "c.py"}
    assert imports_of("engine.a", mods["engine.a"], mods) == {"engine.b", "search.cli"}


def test_no_module_over_400_lines():
    big = {str(p.relative_to(ROOT)): n for p in project_modules().values()
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, big
