"""One table of exit codes, documented once, kept by every command: each error is one line on stderr.

Every command is run into the errors it can meet (invalid settings, Redis
unreachable, an invalid or unknown message id, a conflict, a failed message) as
a process of its own, its output piped, and must exit with the code the table
gives, saying why on exactly one line that names the command.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import pytest

from lcstream.worker.cli.app import app
from lcstream.worker.cli.common import EXIT_CODE_MEANINGS, ExitCode
from tests.conftest import conformance_cases, free_port
from tests.integration.processes import LCSTREAM
from tests.integration.test_cli import write_jsonl

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
CASES = {c["name"]: c for c in conformance_cases()}

# Each command with the arguments that make it do its normal work on message M.
COMMANDS: dict[str, list[str]] = {
    "worker": ["worker", "--burst"],
    "serve": ["serve", "--port", "0"],
    "demo": ["demo", "--messages", "1", "--pace-ms", "0"],
    "health": ["health"],
    "publish": ["publish", "EVENTS"],
    "tail": ["tail", "M", "--wait-s", "0.5"],
    "result": ["result", "M"],
    "replay": ["replay", "M", "--diff"],
    "export": ["export", "M"],
    "stats": ["stats", "--sample-s", "0"],
    "enqueue": ["enqueue", "hello", "--message-id", "M"],
    "cancel": ["cancel", "M", "--wait-s", "0"],
    "dead list": ["dead", "list"],
    "dead retry": ["dead", "retry", "M"],
    "dead delete": ["dead", "delete", "M", "--yes"],
    "token": ["token", "M"],
}
TALK_TO_REDIS = [c for c in COMMANDS if c not in ("worker", "serve", "demo", "health", "token")]
NAME_A_MESSAGE = ["tail", "result", "replay", "export", "cancel", "dead retry", "dead delete"]


def registered() -> set[str]:
    names = {
        command.name or (command.callback.__name__ if command.callback else "")
        for command in app.registered_commands
    }
    return names | {f"dead {c.name}" for group in app.registered_groups if group.typer_instance
                    for c in group.typer_instance.registered_commands if c.name}  # fmt: skip


def test_every_command_is_covered_here() -> None:
    assert set(COMMANDS) == registered()


def test_the_documented_table_is_the_one_commands_use() -> None:
    section = OPERATIONS.read_text().split("## Output and exit codes", 1)[1]
    rows = dict(re.findall(r"^\| (\d) \| (.+?) \|$", section, re.MULTILINE))
    assert {int(code): meaning for code, meaning in rows.items()} == {
        int(code): meaning for code, meaning in EXIT_CODE_MEANINGS.items()
    }


async def run_all(runs: list[tuple[str, list[str], dict[str, str]]]) -> dict[str, tuple[int, str, str]]:
    """Run each (label, argv, env) concurrently; return label -> (exit code, stdout, stderr)."""

    async def one(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            LCSTREAM, *argv, env=env, stdin=subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    results = await asyncio.gather(*(one(argv, env) for _, argv, env in runs))
    return {label: result for (label, _, _), result in zip(runs, results, strict=True)}


def argv_of(command: str, message_id: str, events: Path) -> list[str]:
    return [{"M": message_id, "EVENTS": str(events)}.get(word, word) for word in COMMANDS[command]]


def assert_reported(label: str, result: tuple[int, str, str], code: ExitCode, command: str) -> None:
    exit_code, _, stderr = result
    lines = stderr.splitlines()
    assert exit_code == code, f"{label}: exit {exit_code}, not {code.value}: {stderr}"
    assert len(lines) == 1 and lines[0].startswith(f"lcstream {command}: "), f"{label}: {stderr!r}"


async def test_every_command_reports_errors_with_the_table_s_codes(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    events = write_jsonl(tmp_path / "m.jsonl", CASES["plain_text"]["events"])
    invalid = {**worker_env, "LCSTREAM_PARTITIONS": "0"}
    unreachable = {**worker_env, "LCSTREAM_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    runs = [(f"{c} with invalid settings", argv_of(c, "m", events), invalid) for c in COMMANDS]
    runs += [(f"{c} without Redis", argv_of(c, "m", events), unreachable) for c in TALK_TO_REDIS]
    runs += [(f"{c} of an invalid id", argv_of(c, "bad{id}", events), worker_env) for c in NAME_A_MESSAGE]
    runs += [(f"{c} of an unknown id", argv_of(c, "never-seen", events), worker_env) for c in NAME_A_MESSAGE]
    runs += [("health with no port", argv_of("health", "m", events), worker_env)]
    runs += [
        (
            "publish of an invalid id",
            [*argv_of("publish", "m", events), "--message-id", "bad{id}"],
            worker_env,
        )
    ]
    results = await run_all(runs)

    for command in COMMANDS:
        assert_reported(f"{command} with invalid settings", results[f"{command} with invalid settings"],
                        ExitCode.USAGE, command)  # fmt: skip
    for command in TALK_TO_REDIS:
        assert_reported(
            f"{command} without Redis", results[f"{command} without Redis"], ExitCode.UNAVAILABLE, command
        )
    for command in NAME_A_MESSAGE:
        assert_reported(
            f"{command} of an invalid id", results[f"{command} of an invalid id"], ExitCode.USAGE, command
        )
        assert_reported(
            f"{command} of an unknown id", results[f"{command} of an unknown id"], ExitCode.ABSENT, command
        )
    assert_reported("health with no port", results["health with no port"], ExitCode.USAGE, "health")
    assert_reported(
        "publish of an invalid id", results["publish of an invalid id"], ExitCode.USAGE, "publish"
    )
    assert not any("Traceback" in stderr for _, _, stderr in results.values())


async def test_conflicts_and_failures_have_their_own_codes(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    plain, failed = CASES["plain_text"], CASES["error_mid_stream"]
    for case in (plain, failed):
        path = write_jsonl(tmp_path / f"{case['name']}.jsonl", case["events"])
        published = await run_all([("publish", ["publish", str(path)], worker_env)])
        assert published["publish"][0] == 0
    other = write_jsonl(tmp_path / "other.jsonl", CASES["unicode_text"]["events"])
    results = await run_all(
        [
            ("worker", ["worker", "--burst"], worker_env),
        ]
    )
    assert results["worker"][0] == 0
    results = await run_all([
        ("conflict", ["publish", str(other), "--message-id", plain["message_id"]], worker_env),
        ("enqueue taken", ["enqueue", "hi", "--message-id", plain["message_id"]], worker_env),
        ("result failed", ["result", failed["message_id"]], worker_env),
        ("tail failed", ["tail", failed["message_id"]], worker_env),
        ("cancel ended", ["cancel", plain["message_id"], "--wait-s", "0"], worker_env),
        ("retry completed", ["dead", "retry", plain["message_id"]], worker_env),
    ])  # fmt: skip
    assert_reported("conflict", results["conflict"], ExitCode.CONFLICT, "publish")
    assert_reported("enqueue taken", results["enqueue taken"], ExitCode.CONFLICT, "enqueue")
    assert (
        results["result failed"][0] == ExitCode.FAILED
        and json.loads(results["result failed"][1])["status"] == "failed"
    )
    assert results["tail failed"][0] == ExitCode.FAILED
    assert_reported("cancel ended", results["cancel ended"], ExitCode.FAILED, "cancel")
    assert_reported("retry completed", results["retry completed"], ExitCode.FAILED, "dead retry")


@pytest.mark.parametrize("width", ["40"])
async def test_piped_output_is_never_wrapped(worker_env: dict[str, str], width: str, tmp_path: Path) -> None:
    long_id = "m-" + "x" * 120
    events = write_jsonl(tmp_path / "long.jsonl", [{**CASES["plain_text"]["events"][0], "id": long_id}])
    env = {**worker_env, "COLUMNS": width, "LCSTREAM_IDLE_TIMEOUT_S": "0.2"}
    assert (await run_all([("publish", ["publish", str(events)], env)]))["publish"][0] == 0
    assert (await run_all([("worker", ["worker", "--burst"], env)]))["worker"][0] == 0
    listed = (await run_all([("list", ["dead", "list"], env)]))["list"]
    assert listed[0] == 0
    rows = listed[1].splitlines()[2:]  # title, header, then one line per dead letter
    assert [row.split("\t")[:2] for row in rows] == [[long_id, "idle_timeout"]]
    missing = (await run_all([("result", ["result", long_id + "-gone"], env)]))["result"]
    assert missing[2].count("\n") == 1 and long_id + "-gone" in missing[2]


async def test_help_is_plain_text(worker_env: dict[str, str]) -> None:
    helps = await run_all(
        [(c, [*COMMANDS[c][: 2 if c.startswith("dead") else 1], "--help"], worker_env) for c in COMMANDS]
    )
    for command, (code, stdout, _) in helps.items():
        assert code == 0 and stdout.startswith("Usage: lcstream"), command
        assert "<bool>" not in stdout and "╭" not in stdout, command
