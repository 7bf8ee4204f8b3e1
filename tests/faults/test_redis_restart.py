"""Acceptance: Redis restarts (SIGTERM or kill -9) in the middle of 20 streaming messages.

The test's own redis-server runs with `appendonly yes` and `appendfsync always`,
so whatever it acknowledged survives the restart; it comes back on the same port
and directory. The producers keep streaming through the outage on their own
retries (if one raises, the test fails), the worker drops its in-memory state
and rebuilds from its pending entries, followers (`subscribe()`) resume from the
last frame they saw, and every message still completes exactly as
langchain-core's in-process stream assembles it.
"""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

import pytest
from redis.asyncio import Redis

from lcstream.streams.connection import connect_single
from lcstream.streams.frames import Frame
from lcstream.streams.reader import read_frames
from lcstream.streams.subscribe import subscribe
from tests.conftest import RedisServer, start_redis_server, stop_redis_server
from tests.faults.support import (
    DEAD,
    SpawnWorker,
    assert_all_match_oracle,
    lines_of,
    message_events,
    pending_count,
    start_redis_at,
    stream_message,
    wait_for_log,
)
from tests.helpers import all_outcomes, wait_for

MESSAGES = 20
DURABLE = ("--appendonly", "yes", "--appendfsync", "always")


async def follow(client: Redis, message_id: str) -> list[Frame]:
    """Every frame of the message, as a dashboard following it through the outage sees them."""
    return [frame async for frame in subscribe(client, message_id, wait_for_start_s=None)]


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill9"])
async def test_worker_and_producers_ride_out_a_redis_restart(
    tmp_path: Path, spawn: SpawnWorker, how: signal.Signals
) -> None:
    directory = tmp_path / "redis-restart"
    directory.mkdir()
    servers: list[RedisServer] = [start_redis_server(directory, *DURABLE)]
    port = servers[0].port
    url = servers[0].url
    producer_client = connect_single(url, socket_timeout_s=5)
    follower_client = connect_single(url, socket_timeout_s=5)
    check = Redis.from_url(url)
    producers: asyncio.Future[list[None]] | None = None
    followers: asyncio.Future[list[list[Frame]]] | None = None
    try:
        worker = spawn("restart-w", url=url)
        await wait_for_log(worker, "started")
        rng = random.Random(int(how))
        events_by_id = {f"restart-{n}": message_events(f"restart-{n}", n, rng, tokens=70) for n in range(20)}
        sent = {m: [0] for m in events_by_id}

        async def produce(n: int, message_id: str) -> None:
            await asyncio.sleep(n * 0.1)  # staggered starts: some messages begin during the outage
            await stream_message(
                producer_client, message_id, events_by_id[message_id], pace_s=0.05, sent=sent[message_id]
            )

        producers = asyncio.gather(*(produce(n, m) for n, m in enumerate(events_by_id)))
        followed = list(events_by_id)[:5]
        followers = asyncio.gather(*(follow(follower_client, m) for m in followed))

        async def half_claimed() -> bool:
            return await pending_count(check) >= MESSAGES // 2

        await wait_for(half_claimed, timeout_s=20, what="the worker to hold half the messages")
        await check.aclose()
        before = {m: count[0] for m, count in sent.items()}
        servers[0].process.send_signal(how)
        servers[0].process.wait(timeout=10)
        await wait_for_log(worker, "redis-unavailable")

        async def every_producer_sent_during_the_outage() -> bool:
            return all(
                sent[m][0] > before[m] or sent[m][0] == len(events) for m, events in events_by_id.items()
            )

        await wait_for(every_producer_sent_during_the_outage, timeout_s=10, what="events during the outage")
        servers.append(start_redis_at(directory, port, *DURABLE))
        check = Redis.from_url(url)

        await producers  # raises if a producer gave up
        await wait_for(
            lambda: all_outcomes(check, list(events_by_id)),
            timeout_s=30,
            what="all outcomes after the restart",
        )
        got = await asyncio.wait_for(followers, 30)  # raises if a follower gave up
        for message_id, frames in zip(followed, got, strict=True):
            assert frames == await read_frames(check, message_id), message_id
        assert worker.process.poll() is None, "the worker died with Redis"
        assert lines_of(worker, "redis-unavailable")
        await assert_all_match_oracle(check, events_by_id)
        assert await pending_count(check) == 0
        assert await check.xlen(DEAD) == 0
        assert worker.terminate() == 0
    finally:
        for running in (producers, followers):
            if running is not None and not running.done():
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
        await check.aclose()
        await producer_client.aclose()
        await follower_client.aclose()
        for server in servers:
            if server.process.poll() is None:
                stop_redis_server(server)
