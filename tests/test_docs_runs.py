"""docs/runs.md's scripts run as shown: follow_run.py started first follows agent.py's run live, and
again as a replay once it ended. Each is its own process on the session's redis-server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.docs_support import ROOT, section, shell_lines, write_block

TIMEOUT_S = 60
EXPECTED = ["forecast: Paris is sunny.", "advise: Pack sunglasses."]


def test_the_page_runs_these_commands() -> None:
    assert shell_lines(section(ROOT / "docs" / "runs.md", "Following a run")) == [
        "python follow_run.py trip-1 &", "python agent.py"
    ]  # fmt: skip


async def test_a_follower_started_first_sees_the_run_live_then_a_late_one_replays_it(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    agent, follow_run = write_block("agent.py", tmp_path), write_block("follow_run.py", tmp_path)

    async def run(script: Path, *args: str) -> list[str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(script), *args, cwd=tmp_path, env=worker_env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
        assert process.returncode == 0, err.decode()[-2000:]
        return out.decode().splitlines()

    live = asyncio.create_task(run(follow_run, "trip-1"))
    assert await run(agent) == ["Pack sunglasses."]
    assert await live == EXPECTED
    assert await run(follow_run, "trip-1") == EXPECTED
