"""The shape of the product code: dependencies point one way, no import cycle, small modules."""

from __future__ import annotations

import ast
import os
from pathlib import Path

from tests.deploy.files import REPO

PACKAGE = REPO / "lcstream"
MAX_LINES = 300


def modules() -> dict[str, Path]:
    """Every product module by dotted name, found through `lcstream/` as Python imports them."""
    found: dict[str, Path] = {}
    for directory, _, files in os.walk(PACKAGE, followlinks=True):  # worker/, streams/, config/ are links
        for path in sorted(Path(directory) / name for name in files if name.endswith(".py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    assert len(found) > 50, f"only {len(found)} modules found under {PACKAGE}"
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The product modules a module imports, `TYPE_CHECKING` blocks included (a cycle is a cycle)."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lcstream"):
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            imported |= {name for name in names if name in known} or {node.module}
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names if alias.name.startswith("lcstream")}
    return imported


def test_no_import_cycle_in_the_product_code() -> None:
    found = modules()
    graph = {name: imports_of(path, set(found)) - {name} for name, path in found.items()}
    cycles: list[list[str]] = []

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            cycles.append([*trail[trail.index(name) :], name])
            return
        for target in sorted(graph.get(name, ())):
            visit(target, [*trail, name])

    for name in sorted(graph):
        if name.count(".") > 1 and not cycles:  # the public API (lcstream/__init__) imports everything
            visit(name, [])
    assert cycles == []


def test_the_library_never_imports_the_service() -> None:
    found = modules()
    wrong = {
        name: sorted(
            target for target in imports_of(path, set(found)) if target.startswith("lcstream.worker")
        )
        for name, path in found.items()
        if name.startswith(("lcstream.streams", "lcstream.config"))
    }
    assert {name: targets for name, targets in wrong.items() if targets} == {}


def test_every_product_module_is_under_300_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {name: size for name, size in sizes.items() if size >= MAX_LINES} == {}
