"""Imports only go down the floors: no package of edgeprune imports another that imports it back, directly or
round a longer cycle, counting the imports inside functions too (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import edgeprune

ROOT = Path(edgeprune.__file__).parent


def _unit(module: str) -> str:
    """The floor a module belongs to: its package under edgeprune (edgeprune.capture), or a top-level module."""
    return ".".join(module.split(".")[:2])


def package_imports() -> dict[str, dict[str, str]]:
    """Per floor, the floors it imports, each with one place that does (module:line)."""
    floors = {_unit(f"edgeprune.{p.stem}") for p in ROOT.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    edges: dict[str, dict[str, str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        module = ".".join(path.with_suffix("").relative_to(ROOT.parent).parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                target = _unit(name)
                if target in floors and target != _unit(module) and target != "edgeprune.__init__":
                    edges.setdefault(_unit(module), {}).setdefault(target, f"{module}:{node.lineno}")
    return edges


def cycles(edges: dict[str, dict[str, str]]) -> list[list[str]]:
    """The strongly connected sets of more than one floor (Tarjan's algorithm, iterative over a small graph)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_package_imports_one_that_imports_it_back():
    edges = package_imports()
    assert edges["edgeprune.reconstruct"].keys() >= {"edgeprune.capture"}, "the scan sees the imports"
    found = cycles(edges)
    where = [" ; ".join(f"{a} -> {b} ({edges[a][b]})" for a in c for b in c if b in edges.get(a, {})) for c in found]
    assert not found, where


def test_the_map_statistics_are_the_floor_capture_and_scoring_stand_on():
    edges = package_imports()
    assert "edgeprune.maps" not in edges, "edgeprune.maps imports nothing else of edgeprune"
    assert {"edgeprune.maps"} <= edges["edgeprune.capture"].keys() and "edgeprune.capture" in edges["edgeprune.scoring"]
    assert not {"edgeprune.scoring", "edgeprune.reconstruct"} & edges["edgeprune.capture"].keys()


def test_a_cycle_is_found_with_the_places_that_make_it():
    edges = {"a": {"b": "a.x:1"}, "b": {"c": "b.y:2"}, "c": {"a": "c.z:3"}, "d": {"a": "d:1"}}
    assert cycles(edges) == [["a", "b", "c"]]
