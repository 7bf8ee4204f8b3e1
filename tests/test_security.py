"""What docs/security.md promises about serialization: nothing in lcstream can unpickle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNSAFE = {
    "pickle",
    "_pickle",
    "marshal",
    "shelve",
    "dill",
    "cloudpickle",
    "jsonpickle",
    "langchain_core.load",
}


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def is_unsafe(module: str) -> bool:
    return any(module == name or module.startswith(f"{name}.") for name in UNSAFE)


def test_no_package_imports_a_deserializer_that_runs_code() -> None:
    sources = [path for package in ("config", "streams", "worker") for path in (ROOT / package).rglob("*.py")]
    assert len(sources) > 10
    found = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in sources
        for module in imported_modules(path)
        if is_unsafe(module)
    }
    assert found == set()


def test_the_check_sees_such_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import pickle as p\nfrom langchain_core.load import loads\nfrom json import loads as ok\n"
    )
    assert {m for m in imported_modules(sample) if is_unsafe(m)} == {
        "pickle",
        "langchain_core.load",
        "langchain_core.load.loads",
    }
