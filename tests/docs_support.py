"""The code blocks of README.md and docs/*.md, which test runs each Python block, and the example file.

Every ```python block starts with a comment naming it (`# producer.py`). `RUN_BY`
says which test module runs it; `tests/test_doc_blocks.py` fails when a block is
missing from it, or it names a block the docs no longer have.

`docs/examples/hello.jsonl`, the events file of the README's quickstart, is the
demo model's chunks through langchain-core's `chunks_to_events`, as a live stream
makes them; `python -m tests.docs_support` writes it again (after a langchain-core
upgrade), and a test fails when the file differs from what it would write.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from langchain_core.language_models._compat_bridge import chunks_to_events
from langchain_core.outputs import ChatGenerationChunk

from lcstream.worker.demo.models import demo_model

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
HELLO = DOCS / "examples" / "hello.jsonl"
HELLO_ID = "hello-1"

# Block name -> the test module that runs it.
RUN_BY = {
    "producer.py": "tests/test_readme_quickstart.py",
    "follow.py": "tests/test_readme_quickstart.py",
    "publish.py": "tests/test_docs_python.py",
    "late_joiner.py": "tests/test_docs_python.py",
    "app.py": "tests/test_readme_jobs.py",
    "client.py": "tests/test_readme_jobs.py",
    "settings.py": "tests/test_doc_blocks.py",
    "agent.py": "tests/test_docs_runs.py",
    "follow_run.py": "tests/test_docs_runs.py",
}

_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
_NAME = re.compile(r"# (\S+\.py)\b")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language and its text."""

    path: Path
    line: int
    language: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def name(self) -> str | None:
        """The name its first-line comment gives it (`# producer.py` -> `producer.py`)."""
        match = _NAME.match(self.code)
        return match.group(1) if match else None


def doc_files() -> list[Path]:
    """README.md and every page under docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def blocks(language: str | None = None) -> list[Block]:
    """Every fenced block of the docs (of `language` when given), in order."""
    found = []
    for path in doc_files():
        text = path.read_text()
        for match in _BLOCK.finditer(text):
            if language is None or match.group(1) == language:
                line = text.count("\n", 0, match.start()) + 1
                found.append(Block(path, line, match.group(1), match.group(2)))
    return found


def python_block(name: str) -> Block:
    """The one ```python block named `name`."""
    (block,) = [b for b in blocks("python") if b.name == name]
    return block


def write_block(name: str, directory: Path) -> Path:
    """Write the block `name` to `directory/name`, to run it as a script."""
    path = directory / name
    path.write_text(python_block(name).code)
    return path


def section(path: Path, heading: str) -> str:
    """The text of `path` under `## heading`, up to the next `## `."""
    text = path.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : None if end < 0 else end]


def shell_lines(text: str) -> list[str]:
    """The commands of the ```sh blocks in `text`, comments and blank lines dropped."""
    commands = []
    for match in _BLOCK.finditer(text):
        if match.group(1) == "sh":
            for line in match.group(2).splitlines():
                command = re.sub(r"\s+#.*$", "", line).strip()
                if command and not command.startswith("#"):
                    commands.append(command)
    return commands


def hello_events() -> list[dict[str, Any]]:
    """The demo model's answer as protocol events, message id `hello-1`."""
    chunks = (ChatGenerationChunk(message=chunk) for chunk in demo_model().scripts[0])
    return [cast(dict[str, Any], event) for event in chunks_to_events(chunks, message_id=HELLO_ID)]


def hello_jsonl() -> str:
    return "".join(json.dumps(event, ensure_ascii=False) + "\n" for event in hello_events())


if __name__ == "__main__":
    HELLO.parent.mkdir(parents=True, exist_ok=True)
    HELLO.write_text(hello_jsonl())
    print(f"wrote {HELLO.relative_to(ROOT)}")
