"""The package's import graph, read from the source with ``ast``: which module imports which, at run time.

Imports under ``if TYPE_CHECKING:`` are left out (they never run); imports inside functions are kept (they run
when called). Only imports of the package itself are recorded, plus third-party top-level names.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "noizylab_desktop"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


@dataclass
class Module:
    name: str
    path: Path
    imports: set[str] = field(default_factory=set)  # own modules (dotted) and third-party top-level names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


class _Collector(ast.NodeVisitor):
    def __init__(self, module: Module, known: set[str]) -> None:
        self.module = module
        self.known = known

    def visit_If(self, node: ast.If) -> None:  # noqa: N802 (ast's name)
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:  # noqa: N802
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802
        if node.level or node.module is None:
            raise AssertionError(f"{self.module.path}: relative imports are not used in this package")
        for alias in node.names:
            # ``from pkg import mod`` imports a module when pkg.mod is one, else a name of pkg.
            candidate = f"{node.module}.{alias.name}"
            self._add(candidate if candidate in self.known else node.module)

    def _add(self, name: str) -> None:
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            while name not in self.known and "." in name:
                name = name.rsplit(".", 1)[0]
            self.module.imports.add(name)
        else:
            self.module.imports.add(name.split(".")[0])


def modules() -> dict[str, Module]:
    """Every module of the package but the generated ``_proto``, with what it imports at run time."""
    found = {_module_name(p): Module(_module_name(p), p) for p in sorted(ROOT.rglob("*.py")) if "_proto" not in p.parts}
    known = set(found) | {f"{PACKAGE}._proto"}
    for module in found.values():
        _Collector(module, known).visit(ast.parse(module.path.read_text(encoding="utf-8")))
    return found


def layer(name: str) -> str:
    """``core``, ``node``, ``cli``, ``ui``, ``services.<feature>``, or the top-level module's own name."""
    parts = name.split(".")[1:]
    if not parts:
        return "package"
    if parts[0] == "services" and len(parts) > 1:
        return f"services.{parts[1]}"
    return parts[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found
