"""Connections killed under load (`CLIENT KILL`) and a stalled server: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from lcstream.streams.connection import connect_single
from lcstream.streams.producer import StreamProducer
from lcstream.streams.reader import read_outcome
from tests.conftest import WorkerProcess, conformance_cases, start_redis_server, stop_redis_server
from tests.helpers import all_outcomes, assert_frames_match, in_process_oracle, wait_for

CASES = [c for c in conformance_cases() if len(c["events"]) < 100]


async def stream_slowly(redis: Redis, message_id: str, events: list[dict[str, Any]], pace_s: float) -> None:
    async with StreamProducer(redis, message_id) as producer:
        for event in events:
            await producer.send(event)
            await asyncio.sleep(pace_s)


async def check_all(redis: Redis, messages: dict[str, list[dict[str, Any]]]) -> None:
    for message_id, events in messages.items():
        expected = await in_process_oracle(events, message_id)
        await assert_frames_match(redis, message_id, expected)
        outcome = await read_outcome(redis, message_id)
        assert outcome is not None
        if "output" in expected:
            assert outcome.message == expected["output"]
        else:
            assert outcome.error is not None and outcome.error["message"] == expected["error"]
    assert (await redis.xpending("lcstream:{0}:dispatch", "workers"))["pending"] == 0


async def test_client_kill_of_every_connection_while_streaming(
    redis_server: Any, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    worker = spawn_worker()
    producer_redis = connect_single(redis_server.url, socket_timeout_s=5)
    killer = connect_single(redis_server.url, socket_timeout_s=5)
    messages = {f"killed-{i}": CASES[i % len(CASES)]["events"] for i in range(12)}
    streams = asyncio.gather(*(stream_slowly(producer_redis, m, e, 0.04) for m, e in messages.items()))
    kills = 0
    while not streams.done():
        # Every other client: the worker's pool, its blocked XREAD, and the producers'.
        kills += int(await killer.client_kill_filter(_type="normal", skipme=True))
        await asyncio.wait({streams}, timeout=0.3)
    await streams
    assert kills >= 5

    await wait_for(
        lambda: all_outcomes(killer, list(messages)), timeout_s=60, what="every outcome after the kills"
    )
    await check_all(killer, messages)
    reconnects = [line for line in worker.log_lines() if line["event"] == "redis-unavailable"]
    assert reconnects, "the worker never saw its connections killed"
    assert worker.terminate() == 0
    await producer_redis.aclose()
    await killer.aclose()


async def test_stalled_server_then_resumed(
    tmp_path: Path, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    server = start_redis_server(tmp_path)
    try:
        env = {"LCSTREAM_REDIS_URL": server.url, "LCSTREAM_SOCKET_TIMEOUT_S": "1", "LCSTREAM_BLOCK_MS": "300"}
        worker = spawn_worker(**env)
        redis = connect_single(server.url, socket_timeout_s=1)
        messages = {f"stalled-{i}": CASES[i % len(CASES)]["events"] for i in range(8)}
        streams = asyncio.gather(*(stream_slowly(redis, m, e, 0.05) for m, e in messages.items()))
        await asyncio.wait({streams}, timeout=0.5)
        os.kill(server.process.pid, signal.SIGSTOP)  # longer than every socket timeout
        await asyncio.sleep(2.5)  # the fault's duration, not synchronization
        os.kill(server.process.pid, signal.SIGCONT)
        await streams  # the producers' retries carried them through the stall

        await wait_for(
            lambda: all_outcomes(redis, list(messages)), timeout_s=60, what="every outcome after the stall"
        )
        await check_all(redis, messages)
        timeouts = [line for line in worker.log_lines() if line["event"] == "redis-unavailable"]
        assert timeouts, "the worker never noticed the stall"
        assert worker.terminate() == 0
        await redis.aclose()
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        stop_redis_server(server)
