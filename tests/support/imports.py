"""The product's import graph, read from the source with ``ast``: every ``import`` and ``from ...
import`` in a module, at any depth (inside functions and ``TYPE_CHECKING`` blocks too), resolved to
the product modules it names. ``scripts/deps.py`` draws it; ``tests/unit/test_layers.py`` holds the
layer rules against it.

Only modules of the packages read are nodes; everything else (the standard library, Flask, ...) is
left out. ``from pkg import name`` counts as an import of ``pkg.name`` when that is a module of ours,
otherwise of ``pkg`` itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported product module, dotted
    line: int


@dataclass
class Graph:
    modules: dict[str, Path] = field(default_factory=dict)  # dotted name -> file
    imports: list[Import] = field(default_factory=list)

    def edges(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {name: set() for name in self.modules}
        for imp in self.imports:
            if imp.target != imp.source:
                out[imp.source].add(imp.target)
        return out

    def lines(self, module: str) -> int:
        return len(self.modules[module].read_text(encoding="utf-8").splitlines())

    def circles(self) -> list[list[str]]:
        """Strongly connected components of more than one module (Tarjan), largest first."""
        return sorted((sorted(c) for c in _components(self.edges()) if len(c) > 1), key=lambda c: (-len(c), c))


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read(packages: Iterable[str], root: Path = ROOT) -> Graph:
    graph = Graph()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            graph.modules[module_name(path, root)] = path
    for name, path in graph.modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for target in _targets(node, name, is_package, graph.modules):
                graph.imports.append(Import(name, target, getattr(node, "lineno", 0)))
    return graph


def _targets(node: ast.AST, module: str, is_package: bool, known: dict[str, Path]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            found = _known_prefix(alias.name, known)
            if found:
                yield found
    elif isinstance(node, ast.ImportFrom):
        base = _absolute(node, module, is_package)
        if base is None:
            return
        for alias in node.names:
            full = f"{base}.{alias.name}"
            if full in known:
                yield full
            else:
                found = _known_prefix(base, known)
                if found:
                    yield found


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str | None:
    if not node.level:
        return node.module
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    up = node.level - 1
    if up > len(parts):
        return None
    parts = parts[: len(parts) - up] if up else parts
    return ".".join(parts + ([node.module] if node.module else []))


def _known_prefix(dotted: str, known: dict[str, Path]) -> str | None:
    parts = dotted.split(".")
    while parts:
        name = ".".join(parts)
        if name in known:
            return name
        parts.pop()
    return None


def _components(edges: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in edges:
        if start in index:
            continue
        # Iterative Tarjan: (node, iterator over its successors)
        work: list[tuple[str, Iterator[str]]] = []
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        work.append((start, iter(sorted(edges[start]))))
        while work:
            node, successors = work[-1]
            advanced = False
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(component)
    return found


# --- layers of the product package ---------------------------------------------------------------

# widget.<first part> -> its layer. Modules of widget/ not named here are "app" (the factory, config,
# the embedded runner, ...), which may import anything.
LAYERS = {
    "domain": "domain",
    "crm": "crm",
    "services": "services",
    "web": "web",
    "jobs": "jobs",
    "models": "models",
    "db": "models",
    "config": "config",
}


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "widget":
        return parts[0]
    if len(parts) == 1:
        return "app"
    return LAYERS.get(parts[1], "app")
