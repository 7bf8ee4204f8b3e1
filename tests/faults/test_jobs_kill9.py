"""Acceptance: `kill -9` of the arq worker mid-generation; the message still reaches a terminal outcome.

The documented rule (docs/jobs.md): arq runs the job again once
its in-progress mark expires (`LCSTREAM_JOB_TIMEOUT_S` + 10 s); the retry finds
M open, never writes a second generation into it, and ends it failed with code
`producer_lost` at once. The stream worker here keeps its 300 s idle timeout, so
it is the retry, not the idle timeout, that ends the message.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from lcstream.streams.ending import MessageState, message_state
from lcstream.streams.jobqueue import enqueue_generation
from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import read_events, read_frames, read_outcome
from tests.conftest import RedisServer
from tests.faults.support import SpawnWorker, wait_for_log, worker_base_env
from tests.helpers import wait_for
from tests.worker.jobs.models import ALL, MODULE
from tests.worker.jobs.support import job_of

ROOT = Path(__file__).resolve().parents[2]
ARQ = str(Path(sys.executable).with_name("arq"))
JOB_TIMEOUT_S = 2


@pytest.fixture
def start_arq(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`arq lcstream.worker.jobs.WorkerSettings` subprocesses the test starts; killed at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def arq_worker(started: list[subprocess.Popen[bytes]], env: dict[str, str], log: Path, *args: str) -> None:
    with log.open("wb") as stderr:
        started.append(
            subprocess.Popen(
                [ARQ, "lcstream.worker.jobs.WorkerSettings", *args], env=env, cwd=ROOT, stderr=stderr
            )
        )


async def test_kill_9_of_the_arq_worker_mid_generation_ends_the_message_at_the_retry(
    fault_redis: Redis,
    fault_server: RedisServer,
    spawn: SpawnWorker,
    start_arq: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    env = {
        **worker_base_env(fault_server.url),
        "LCSTREAM_ALLOWED_MODELS": ",".join(ALL),
        "LCSTREAM_JOB_TIMEOUT_S": str(JOB_TIMEOUT_S),
    }
    stream_worker = spawn("streams")
    await wait_for_log(stream_worker, "started")
    message_id = await enqueue_generation(fault_redis, "a long answer", model=f"{MODULE}:slow_model")
    events_key = Keyspace().message(message_id).events
    arq_worker(start_arq, env, tmp_path / "arq-a.log")

    async def generating() -> bool:
        return int(await fault_redis.xlen(events_key)) >= 5

    await wait_for(generating, timeout_s=20, what="the first attempt to stream")
    start_arq[0].kill()
    killed_at = time.monotonic()
    start_arq[0].wait(10)
    written = await read_events(fault_redis, message_id)
    assert await message_state(fault_redis, message_id) is MessageState.OPEN  # the kill left it open

    arq_worker(start_arq, env, tmp_path / "arq-b.log", "--burst")

    async def ended() -> bool:
        return await read_outcome(fault_redis, message_id) is not None

    await wait_for(ended, timeout_s=JOB_TIMEOUT_S + 25, what="the retry to end the message")
    elapsed_s = time.monotonic() - killed_at
    print(
        f"kill -9 -> failed outcome (producer_lost) after {elapsed_s:.1f} s (job timeout {JOB_TIMEOUT_S} s)"
    )
    outcome = await read_outcome(fault_redis, message_id)
    assert outcome is not None and outcome.error is not None
    assert outcome.error["code"] == "producer_lost"
    assert elapsed_s < JOB_TIMEOUT_S + 10 + 5  # arq's in-progress mark, not the 300 s idle timeout
    events = await read_events(fault_redis, message_id)
    assert events[: len(written)] == written  # the first attempt's events, untouched
    assert events[len(written) :] == [
        {"event": "error", "code": "producer_lost", "message": outcome.error["message"]}
    ]  # and nothing of a second generation
    frames = await read_frames(fault_redis, message_id)
    assert [f.seq for f in frames] == list(range(1, len(frames) + 1))
    assert frames[-1].data == outcome.error
    assert start_arq[1].wait(30) == 0
    result = await job_of(fault_redis, message_id).result_info()
    assert result is not None
    assert (result.job_try, result.result) == (2, {"message_id": message_id, "status": "failed"})
