"""Dependencies point one way (DESIGN.md §2, STYLE.md): the package's import graph, read
from the source, has no cycle at run time. Imports inside functions count (a lazy import
that dodges a cycle is still a cycle); those under `if TYPE_CHECKING:` do not."""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "taskflowd"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _type_checking(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if _type_checking(node):
            assert isinstance(node, ast.If)
            for other in node.orelse:
                yield from _imports(ast.Module(body=[other], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _imports(node)


def _targets(
    name: str, is_package: bool, node: ast.Import | ast.ImportFrom, modules: Collection[str]
) -> set[str]:
    """The modules of ours that `node`, in module `name`, loads: `from a import b` is an
    edge to a.b when b is a module, else to a."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & set(modules)
    source = node.module or ""
    if node.level:
        parts = name.split(".")
        base = parts[: len(parts) - node.level + (1 if is_package else 0)]
        source = ".".join([*base, *([source] if source else [])])
    submodules = {f"{source}.{alias.name}" for alias in node.names} & set(modules)
    return submodules or ({source} & set(modules))


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            targets |= _targets(name, is_package, node, modules)
        graph[name] = targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_runtime_import_cycle() -> None:
    graph = import_graph()
    assert "taskflowd.daemon" in graph["taskflowd.cli"] | graph["taskflowd.commands"]
    found = cycles(graph)
    report = [
        f"{member} -> {target}"
        for component in found
        for member in component
        for target in sorted(graph[member] & set(component))
    ]
    assert found == [], "\n".join(report)


def test_the_checker_sees_a_cycle_through_a_lazy_import() -> None:
    modules = ("taskflowd", "taskflowd.a", "taskflowd.b", "taskflowd.c")
    graph = {"taskflowd.a": {"taskflowd.b"}, "taskflowd.b": set()}
    source = "if TYPE_CHECKING:\n    import taskflowd.c\ndef f():\n    from taskflowd import a\n"
    for node in _imports(ast.parse(source)):
        graph["taskflowd.b"] |= _targets("taskflowd.b", False, node, modules)
    assert graph["taskflowd.b"] == {"taskflowd.a"}
    assert cycles(graph) == [["taskflowd.a", "taskflowd.b"]]


def test_the_domain_imports_nothing_else_of_ours() -> None:
    graph = import_graph()
    outside = {
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name.startswith("taskflowd.domain")
        for target in targets
        if not target.startswith("taskflowd.domain") and target != "taskflowd"
    }
    assert outside == set()
