"""The package's layers, read from its source: no import cycle among fanfold's modules, and no
core module importing a wing.

Every ``import`` counts, inside functions too (a deferred import that hides a cycle is a cycle),
except those under ``if TYPE_CHECKING:``, which never run. A wing is reached from the core only
by name, through a string table loaded with ``importlib`` (the stores, the adapters, the lazy
public names): that is the plug-in mechanism, and no import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import fanfold

SOURCE = Path(fanfold.__file__).resolve().parent
WINGS = ("_llm", "_teams", "_cli", "_store", "_sim", "_shared", "_backends", "_adapters", "_observe")

# Cycles known and owned elsewhere, each a set of modules importing one another; each is to go.
# When one is broken, this test fails until its entry is removed.
KNOWN: set[frozenset[str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(SOURCE.rglob("*.py"))}


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under ``node``, at any depth, but those that run only for type
    checkers (the body of ``if TYPE_CHECKING:``; its ``else`` runs, and counts)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and is_type_checking(child.test):
            for statement in child.orelse:
                yield from import_nodes(ast.Module(body=[statement], type_ignores=[]))
        else:
            yield from import_nodes(child)


def imports_of(name: str) -> set[str]:
    """The fanfold modules that module ``name`` imports: for ``from a import b``, ``a.b`` when
    that is a module, else ``a``."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:  # relative: from . import x, from .m import x
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {target for target in found if target in MODULES and target != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the groups of modules that reach one another."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [group for group in groups if len(group) > 1]


def a_cycle(graph: dict[str, set[str]], group: set[str]) -> str:
    """One cycle through the group, as ``a -> b -> a``, for the failure message."""
    start = min(group)
    path = [start]
    seen = {start}
    while True:
        following = sorted(graph[path[-1]] & group)
        closing = start in following
        if closing and len(path) > 1:
            return " -> ".join([*path, start])
        fresh = [m for m in following if m not in seen]
        if not fresh:
            looped = next(m for m in following if m in seen)
            return " -> ".join([*path[path.index(looped) :], looped])
        path.append(fresh[0])
        seen.add(fresh[0])


def test_the_graph_is_read() -> None:
    assert "fanfold._task" in GRAPH["fanfold._fanout"]
    assert "fanfold._options" in GRAPH["fanfold._run"]
    assert "fanfold._journal" not in GRAPH["fanfold._context"]  # under TYPE_CHECKING only
    assert "fanfold._cli._jobs" in GRAPH["fanfold._cli._runs"]  # inside a function: it counts
    assert "fanfold._store._sqlite" not in GRAPH["fanfold._records"]  # by name, through a table


def test_the_reader_counts_deferred_imports_and_not_type_checking_ones() -> None:
    source = """
from typing import TYPE_CHECKING
import a
if TYPE_CHECKING:
    import b
else:
    import c
def f():
    from d import x
    if TYPE_CHECKING:
        import e
"""
    found = {
        alias.name if isinstance(node, ast.Import) else node.module
        for node in import_nodes(ast.parse(source))
        for alias in node.names
    }
    assert found == {"typing", "a", "c", "d"}


def test_the_cycle_finder_names_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"a"}}
    assert strongly_connected(graph) == [{"a", "b", "c"}]
    assert a_cycle(graph, {"a", "b", "c"}) == "a -> b -> c -> a"


def test_no_import_cycle() -> None:
    groups = {frozenset(group) for group in strongly_connected(GRAPH)}
    unknown = [a_cycle(GRAPH, set(group)) for group in groups - KNOWN]
    assert not unknown, "import cycles:\n  " + "\n  ".join(unknown)
    gone = [sorted(group) for group in KNOWN - groups]
    assert not gone, f"these known cycles are broken now: remove them from KNOWN: {gone}"


def is_wing(name: str) -> bool:
    parts = name.split(".")
    return len(parts) > 1 and parts[1] in WINGS


def test_no_core_module_imports_a_wing() -> None:
    """The core (the package's top-level modules, the public ones among them) depends on no
    wing; the wings depend on the core."""
    core = [name for name in MODULES if not is_wing(name)]
    assert "fanfold._run" in core
    assert "fanfold" in core
    breaches = [f"{name} imports {target}" for name in core for target in sorted(GRAPH[name]) if is_wing(target)]
    assert not breaches, "\n".join(breaches)
