"""The import graph: the engine (preflight/) never imports a check, and nothing imports in a
circle. Every import counts, function-local ones too; `if TYPE_CHECKING:` blocks do not run."""

from __future__ import annotations

import ast
from pathlib import Path

from support.cli import REPO

PACKAGES = ("preflight", "preflight_checks")


def module_files() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports at run time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.dump(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }
    targets: list[str] = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    found = set()
    for target in targets:
        while target and target not in known:
            target = target.rpartition(".")[0]
        # A module importing its own package (or a package its submodule) is not an edge.
        if target and target != name and not name.startswith(target + "."):
            found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def test_the_engine_never_imports_a_check() -> None:
    engine_to_checks = {
        name: sorted(t for t in targets if t.split(".")[0] == "preflight_checks")
        for name, targets in graph().items()
        if name.split(".")[0] == "preflight"
    }
    assert {k: v for k, v in engine_to_checks.items() if v} == {}


def test_no_import_cycles() -> None:
    edges = graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert cycles == []


def test_the_graph_sees_function_local_imports() -> None:
    # The checks import their helpers inside run(): the graph must still see those edges, or
    # the two tests above would pass for the wrong reason.
    assert "preflight_checks.kamailio.findings" in graph()["preflight_checks.kamailio"]
    assert "preflight.facts.processes" in graph()["preflight.facts"]
