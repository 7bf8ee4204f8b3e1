"""The code blocks of README.md and docs/: each Python block runs in some test, the rest are correct.

Python blocks are named by their first line (`# producer.py`) and run where
`tests.docs_support.RUN_BY` says. Shell blocks that no test runs are checked
against the command line itself: every `lcstream` subcommand and option they use
exists, every `make` target too. Links between the pages resolve, and the paths
they name exist.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.core import TyperGroup

import lcstream
from lcstream.config.settings import Settings
from lcstream.worker.cli.app import app
from tests.docs_support import (
    HELLO,
    README,
    ROOT,
    RUN_BY,
    Block,
    blocks,
    doc_files,
    hello_jsonl,
    section,
    shell_lines,
    write_block,
)

CONFIGURATION = ROOT / "docs" / "configuration.md"
SETTINGS_RUNS = {
    "python settings.py": "4 200 json",
    "LCSTREAM_PARTITIONS=8 python settings.py": "8 200 json",
}


def test_every_python_block_is_named_and_run_by_a_test() -> None:
    found: dict[str, Block] = {}
    for block in blocks("python"):
        assert block.name, f"{block.where}: a python block starts with a comment naming it, e.g. '# app.py'"
        assert block.name not in found, f"{block.where}: {block.name} is also {found[block.name].where}"
        found[block.name] = block
    assert set(found) - set(RUN_BY) == set(), "blocks no test runs: add them to docs_support.RUN_BY"
    assert set(RUN_BY) - set(found) == set(), "RUN_BY names blocks the docs no longer have"
    for name, module in RUN_BY.items():
        source = (ROOT / module).read_text()
        assert name in source, f"{module} is said to run {name}, but never names it"


@pytest.mark.parametrize("block", blocks("python"), ids=lambda b: b.name or b.where)
def test_python_blocks_compile_and_import_the_public_api(block: Block) -> None:
    tree = ast.parse(block.code, block.where)  # a top-level `await` would not parse
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            assert top not in ("worker", "streams", "config"), f"{block.where}: import lcstream.{node.module}"
            if node.module.startswith("lcstream."):
                public = {alias.name for alias in node.names} & set(lcstream.__all__)
                assert not public, f"{block.where}: import {public} from lcstream, the public API"


def test_the_quickstart_events_file_is_the_demo_models_answer() -> None:
    assert HELLO.read_text() == hello_jsonl(), "run: python -m tests.docs_support"


def test_the_configuration_example_runs_as_shown(tmp_path: Path) -> None:
    text = section(CONFIGURATION, "How settings are read")
    (toml,) = [b for b in blocks("toml") if b.path == CONFIGURATION]
    assert toml.code.startswith("# lcstream.toml\n")
    (tmp_path / "lcstream.toml").write_text(toml.code)
    assert set(tomllib.loads(toml.code)) <= set(Settings.model_fields)
    write_block("settings.py", tmp_path)
    runs = [line for line in shell_lines(text) if "settings.py" in line]
    assert runs == list(SETTINGS_RUNS)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LCSTREAM_")}
    for command, expected in SETTINGS_RUNS.items():
        *assignments, _, script = shlex.split(command)
        env = {**clean, **dict(a.split("=", 1) for a in assignments)}
        done = subprocess.run(
            [sys.executable, script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert (done.returncode, done.stdout.strip()) == (0, expected), done.stderr


def _command(root: Any, words: list[str], where: str) -> None:
    """`lcstream` followed by `words` names a command, and uses only options it has."""
    command = root
    args = list(words)
    while isinstance(command, TyperGroup) and args and not args[0].startswith("-"):
        name = args.pop(0)
        assert name in command.commands, f"{where}: lcstream has no command {name!r}"
        command = command.commands[name]
    options = {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}
    for word in args:
        if word.startswith("-"):
            assert word.split("=")[0] in options, f"{where}: {command.name} has no option {word}"


def _makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def test_every_shell_command_in_the_docs_exists() -> None:
    root = typer.main.get_command(app)
    targets = _makefile_targets()
    named = {b.name for b in blocks("python")}
    for path in doc_files():
        for line in shell_lines(path.read_text()):
            where = f"{path.relative_to(ROOT)}: {line}"
            words = shlex.split(line.split(" > ")[0])
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                variable = words.pop(0).split("=")[0]
                assert variable.removeprefix("LCSTREAM_").lower() in {*Settings.model_fields, "config"}, where
            program = words[0] if words else ""
            if program == "export":
                variable = words[1].split("=")[0]
                assert variable.removeprefix("LCSTREAM_").lower() in Settings.model_fields, where
            elif program == "lcstream":
                _command(root, words[1:], where)
            elif program == "make":
                assert set(words[1:]) - {w for w in words[1:] if "=" in w} <= targets, where
            elif program == "python":
                assert words[1] in named or words[1:3] == ["-m", "tests.benchmarks"], where
            elif program == "arq":
                module, _, attribute = words[1].rpartition(".")
                assert hasattr(__import__(module, fromlist=[attribute]), attribute), where
            else:
                assert program in ("pip", "curl", ".venv/bin/python"), f"{where}: unknown program"


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of `path`."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize(
    "page", [*doc_files(), ROOT / "deploy" / "README.md"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_links_and_paths_resolve(page: Path) -> None:
    text = page.read_text()
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # https://, mailto:
        file, _, anchor = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        assert resolved.exists(), f"{page.name}: link to {target}: no such file"
        if anchor:
            assert anchor in _anchors(resolved), f"{page.name}: link to {target}: no such heading"
    for named in re.findall(r"`((?:worker|streams|config|tests|lcstream|docs)/[^`\s*]*)`", text):
        assert (ROOT / named).exists(), f"{page.name} names {named}, which does not exist"


def test_nothing_refers_to_the_old_design_document() -> None:
    for path in [*doc_files(), ROOT / "deploy" / "README.md"]:
        text = path.read_text()
        assert "../shared" not in text and "DESIGN.md" not in text, path.name


def test_the_readme_is_short_and_maps_every_page() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    mapped = set(re.findall(r"^- \[docs/([\w-]+\.md)\]", section(README, "Documentation"), re.MULTILINE))
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert mapped == pages, "one line per page in the README's Documentation section"
