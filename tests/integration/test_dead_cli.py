"""`lcstream dead list`, `dead retry` and `dead delete`: an operator sees a dead letter, fixes the cause,
re-runs it, or removes it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import conformance_cases
from tests.integration.processes import LCSTREAM
from tests.integration.test_cli import run, write_jsonl

CASES = {c["name"]: c for c in conformance_cases()}


def test_list_then_retry_after_raising_the_limit(worker_env: dict[str, str], tmp_path: Path) -> None:
    plain, tool = CASES["plain_text"], CASES["single_tool_call"]
    for case in (plain, tool):
        assert (
            run("publish", str(write_jsonl(tmp_path / "m.jsonl", case["events"])), env=worker_env).returncode
            == 0
        )
    strict = {**worker_env, "LCSTREAM_MAX_EVENTS_PER_MESSAGE": "20"}
    assert run("worker", "--burst", env=strict).returncode == 0

    listed = run("dead", "list", "--json", env=worker_env)
    assert listed.returncode == 0, listed.stderr
    letters = json.loads(listed.stdout)
    assert [(d["message_id"], d["reason"], d["deliveries"]) for d in letters] == [
        (plain["message_id"], "too_many_events", 1)
    ]
    assert "0-21" in letters[0]["error"]
    table = run("dead", "list", env={**worker_env, "COLUMNS": "200"})
    assert plain["message_id"] in table.stdout and "too_many_events" in table.stdout
    assert run("result", plain["message_id"], env=worker_env).returncode == 1

    refused = run("dead", "retry", tool["message_id"], env=worker_env)
    assert refused.returncode == 1 and "completed" in refused.stderr
    missing = run("dead", "retry", "never-published", env=worker_env)
    assert missing.returncode == 4 and "gone" in missing.stderr

    retried = run("dead", "retry", plain["message_id"], env=worker_env)
    assert retried.returncode == 0, retried.stderr
    assert json.loads(run("dead", "list", "--json", env=worker_env).stdout) == []
    assert run("worker", "--burst", env=worker_env).returncode == 0  # default limit
    done = run("result", plain["message_id"], env=worker_env)
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"status": "completed", "message": plain["expected"]["output"]}


def test_delete_asks_first_then_removes_the_message_s_dead_letters(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    plain = CASES["plain_text"]
    assert (
        run("publish", str(write_jsonl(tmp_path / "m.jsonl", plain["events"])), env=worker_env).returncode
        == 0
    )
    assert (
        run("worker", "--burst", env={**worker_env, "LCSTREAM_MAX_EVENTS_PER_MESSAGE": "20"}).returncode == 0
    )

    declined = answered("n", "dead", "delete", plain["message_id"], env=worker_env)
    assert declined.returncode != 0 and "Delete the dead letters" in declined.stderr
    assert len(json.loads(run("dead", "list", "--json", env=worker_env).stdout)) == 1  # still there
    deleted = answered("y", "dead", "delete", plain["message_id"], "--json", env=worker_env)
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(deleted.stdout) == {"message_id": plain["message_id"], "deleted": 1}
    assert json.loads(run("dead", "list", "--json", env=worker_env).stdout) == []
    again = run("dead", "delete", plain["message_id"], "--yes", env=worker_env)
    assert again.returncode == 4 and "no dead letters" in again.stderr


def answered(answer: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run an `lcstream` command that asks, and answer it."""
    return subprocess.run(
        [LCSTREAM, *args], env=env, input=f"{answer}\n", capture_output=True, text=True, timeout=60
    )
