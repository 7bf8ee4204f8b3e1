"""docs/python.md's scripts run as shown: publish.py, and late_joiner.py on an ended and a live message.

Each runs as its own process against the session's redis-server, with an
`lcstream worker` subprocess serving it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from redis.asyncio import Redis

from lcstream import StreamProducer, read_frames
from tests.conftest import WorkerProcess
from tests.docs_support import ROOT, section, shell_lines, write_block
from tests.helpers import wait_for

TIMEOUT_S = 60


def text(words: str) -> dict[str, object]:
    return {"event": "content-block-delta", "index": 0, "delta": {"type": "text-delta", "text": words}}


def test_the_page_runs_these_commands() -> None:
    commands = shell_lines(section(ROOT / "docs" / "python.md", "Reading"))
    assert commands == ["python publish.py", "python late_joiner.py by-hand-1"]


def test_publish_then_a_late_joiner_of_an_ended_message(
    spawn_worker: Callable[..., WorkerProcess], worker_env: dict[str, str], tmp_path: Path
) -> None:
    spawn_worker()
    publish = write_block("publish.py", tmp_path)
    late_joiner = write_block("late_joiner.py", tmp_path)

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, *args], cwd=tmp_path, env=worker_env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run(str(publish)).splitlines() == [
        "by-hand-1: Hello, world",
        "by-hand-2 failed: overloaded: provider overloaded",
    ]
    assert run(str(late_joiner), "by-hand-1").splitlines() == ["completed at frame 4: 'Hello, world'"]


async def test_a_late_joiner_sees_the_snapshot_then_the_live_frames(
    real_redis: Redis, spawn_worker: Callable[..., WorkerProcess], worker_env: dict[str, str], tmp_path: Path
) -> None:
    spawn_worker()
    late_joiner = write_block("late_joiner.py", tmp_path)

    async with StreamProducer(real_redis, "live-1") as producer:
        await producer.send({"event": "message-start", "role": "ai", "id": "live-1"})
        await producer.send(text("Half"))
        await producer.flush()

        async def two_frames() -> bool:
            return len(await read_frames(real_redis, "live-1")) == 2

        await wait_for(two_frames, what="the worker's start and first text frame")
        joiner = await asyncio.create_subprocess_exec(
            sys.executable, str(late_joiner), "live-1", cwd=tmp_path, env=worker_env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert joiner.stdout is not None
        first = await asyncio.wait_for(joiner.stdout.readline(), TIMEOUT_S)
        assert first.decode() == "streaming at frame 2: 'Half'\n"
        await producer.send(text(" and the rest"))
        await producer.send({"event": "message-finish"})

    out, err = await asyncio.wait_for(joiner.communicate(), TIMEOUT_S)
    assert joiner.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0] == "frame 3: text ' and the rest'"
    assert lines[1].startswith("frame 4: output {")
    assert len(lines) == 2
