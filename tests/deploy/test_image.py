"""deploy/Dockerfile (parsed by BuildKit's own parser) and the build context's .dockerignore."""

from __future__ import annotations

import re

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.deploy.files import (
    DOCKERIGNORE,
    REPO,
    Instruction,
    compose,
    configmap,
    dockerfile_stages,
    image_uid,
    project,
)

BASE_IMAGE = re.compile(r"python:(\d+\.\d+\.\d+)-slim-bookworm")


def instructions(stage: list[Instruction], cmd: str) -> list[Instruction]:
    return [i for i in stage if i.cmd == cmd]


def test_every_stage_starts_from_the_same_pinned_python_the_project_supports() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: build wheels, then a runtime without the build"
    bases = {stage[0].value[0] for stage in stages}
    assert len(bases) == 1, f"one Python for building and running: {bases}"
    match = BASE_IMAGE.fullmatch(bases.pop())
    assert match, "a pinned python:X.Y.Z-slim-bookworm"
    assert Version(match[1]) in SpecifierSet(project()["requires-python"])


def test_the_image_runs_lcstream_as_a_non_root_user() -> None:
    final = dockerfile_stages()[-1]
    assert image_uid() != 0
    (entrypoint,) = instructions(final, "ENTRYPOINT")
    assert entrypoint.json, "exec form: lcstream is PID 1 and gets SIGTERM itself"
    assert entrypoint.value == ("lcstream",)
    assert "lcstream" in project()["scripts"]
    (cmd,) = instructions(final, "CMD")
    assert cmd.json and cmd.value == ("worker",)
    (stop,) = instructions(final, "STOPSIGNAL")
    assert stop.value == ("SIGTERM",)


def test_the_image_exposes_the_metrics_and_gateway_ports() -> None:
    exposed = {port for i in instructions(dockerfile_stages()[-1], "EXPOSE") for port in i.value}
    command = compose()["services"]["gateway"]["command"]
    assert exposed == {configmap()["LCSTREAM_METRICS_PORT"], command[command.index("--port") + 1]}


def test_dependencies_come_from_the_constraints_without_dev_tools() -> None:
    build, *_, final = dockerfile_stages()
    (wheel,) = [i for i in instructions(build, "RUN") if "pip wheel" in i.value[0]]
    assert re.search(r"(-c|--constraint) constraints\.txt\b", wheel.value[0])
    (install,) = [i for i in instructions(final, "RUN") if "pip install" in i.value[0]]
    assert "--no-index" in install.value[0], "the runtime installs only what the build stage resolved"
    assert not instructions(final, "COPY"), "no source tree in the runtime image"
    text = " ".join(v for stage in dockerfile_stages() for i in stage for v in i.value)
    assert "[dev]" not in text and "pytest" not in text


def excluded(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path, or a directory above it, decides."""
    parents = ["/".join(path.split("/")[: i + 1]) for i in range(path.count("/") + 1)]
    result = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = re.escape(raw.removeprefix("!").strip("/"))
        pattern = pattern.replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        pattern = re.sub(r"\\\[(.*?)\\\]", r"[\1]", pattern)
        if any(re.fullmatch(pattern, parent) for parent in parents):
            result = not negated
    return result


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_dockerignore_keeps_the_build_context_to_what_the_build_copies() -> None:
    patterns = dockerignore_patterns()
    kept = [
        "pyproject.toml", "constraints.txt", "README.md", "config/settings.py", "streams/keys.py",
        "worker/cli/app.py", "worker/gateway/static/index.html", "lcstream/__init__.py", "lcstream/py.typed",
        "lcstream/worker",
    ]  # fmt: skip
    left_out = [
        ".venv/bin/python", ".git/HEAD", ".mypy_cache/3.11/x.json", ".pytest_cache/v", ".ruff_cache/x",
        ".hypothesis/examples/x", "artifacts/bench/latest.json", "tests/conftest.py", "docs/security.md",
        "worker/cli/__pycache__/app.cpython-311.pyc", "streams/stray.pyc",
        "lcstream_worker.egg-info/PKG-INFO", "deploy/k8s/users.acl",
    ]  # fmt: skip
    assert [p for p in kept if excluded(p, patterns)] == []
    assert [p for p in left_out if not excluded(p, patterns)] == []
    for stage in dockerfile_stages():
        for copy in instructions(stage, "COPY"):
            if not any(flag.startswith("--from") for flag in copy.flags):
                for source in copy.value[:-1]:
                    assert (REPO / source).exists() and not excluded(source, patterns), source
