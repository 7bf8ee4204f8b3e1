"""Redis faults in the middle of work: connection blips cost no delivery, refused writes leave no hole."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from lcstream.streams.producer import StreamProducer
from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_frames
from tests.conftest import WorkerProcess
from tests.faults.support import (
    DISPATCH,
    GROUP,
    SpawnWorker,
    assert_all_match_oracle,
    lines_of,
    message_events,
    pending_count,
    stopped_stats,
    wait_for_log,
)
from tests.helpers import all_outcomes, wait_for

BLIPS = 10


async def times_delivered(client: Redis) -> int:
    (row,) = await client.xpending_range(DISPATCH, GROUP, min="-", max="+", count=1)
    return int(row["times_delivered"])


async def test_connection_blips_during_a_long_message_cost_no_delivery(
    fault_redis: Redis, spawn: SpawnWorker
) -> None:
    """Ten `CLIENT KILL`s of the worker's connections while one long message streams. Each makes the
    worker re-read its own pending entry, which Redis counts as a delivery; with a limit of 2, a
    worker that let those count would dead-letter the message."""
    worker = spawn("blipped", LCSTREAM_MAX_DELIVERIES="2", LCSTREAM_TAKEOVER_AFTER_MS="60000")
    events = message_events("long-blipped", 1, random.Random(1), tokens=600)
    async with StreamProducer(fault_redis, "long-blipped") as producer:
        for event in events[:50]:
            await producer.send(event)
        await wait_for_log(worker, "claimed")
        for blip in range(BLIPS):
            restarts, claims = len(lines_of(worker, "redis-unavailable")), len(lines_of(worker, "claimed"))
            knocked_out = kill_until(fault_redis, more_lines(worker, "redis-unavailable", restarts))
            await wait_for(knocked_out, timeout_s=10, what=f"blip {blip + 1} to reach the worker")
            for event in events[50 + blip * 50 : 100 + blip * 50]:
                await producer.send(event)
            await producer.flush()
            back_at_work = more_lines(worker, "claimed", claims)  # re-read from its own pending entry
            await wait_for(back_at_work, timeout_s=10, what=f"the worker back at work after blip {blip + 1}")
        # The re-reads raised the count in Redis; the next renewal sets it back to the one delivery.
        await wait_for(lambda: _delivered_once(fault_redis), timeout_s=10, what="the count set back to 1")
        for event in events[100 + (BLIPS - 1) * 50 :]:
            await producer.send(event)
    await wait_for(lambda: all_outcomes(fault_redis, ["long-blipped"]), timeout_s=30, what="the outcome")
    assert worker.terminate() == 0
    await assert_all_match_oracle(fault_redis, {"long-blipped": events})
    assert await fault_redis.xlen("lcstream:dead") == 0
    assert len(lines_of(worker, "redis-unavailable")) >= BLIPS
    assert {line["deliveries"] for line in lines_of(worker, "claimed")} == {1}


def more_lines(worker: WorkerProcess, event: str, than: int) -> Callable[[], Awaitable[bool]]:
    """A condition: the worker logged `event` more than `than` times."""

    async def more() -> bool:
        return len(lines_of(worker, event)) > than

    return more


def kill_until(client: Redis, done: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
    """A condition that kills every other client each time it is not yet `done`: a kill that finds
    the worker's connections idle is healed unnoticed at their next checkout."""

    async def killed() -> bool:
        if await done():
            return True
        await client.client_kill_filter(_type="normal", skipme=True)
        return False

    return killed


async def longest_idle_for(client: Redis, *, seconds: float) -> int:
    """The longest idle time (ms) any pending dispatch entry shows, watched for `seconds`."""
    longest = -1
    deadline = time.monotonic() + seconds

    async def watched_long_enough() -> bool:
        nonlocal longest
        rows = await client.xpending_range(DISPATCH, GROUP, min="-", max="+", count=100)
        longest = max([longest, *(int(row["time_since_delivered"]) for row in rows)])
        return time.monotonic() >= deadline

    await wait_for(watched_long_enough, timeout_s=seconds + 5, what="the leases to be watched")
    return longest


async def _delivered_once(client: Redis) -> bool:
    return await times_delivered(client) == 1


async def test_writes_refused_for_lack_of_memory_are_written_once_memory_is_freed(
    fault_redis: Redis, spawn: SpawnWorker
) -> None:
    """Three out-of-memory episodes (`maxmemory` under `noeviction`) while a worker goes through a
    backlog: every refused write is written again afterwards, so every message is whole."""
    rng = random.Random(7)
    messages = {f"oom-{n}": message_events(f"oom-{n}", n, rng, tokens=1_500) for n in range(40)}
    await asyncio.gather(
        *(publish_events(fault_redis, events, message_id=m) for m, events in messages.items())
    )
    await fault_redis.config_set("maxmemory-policy", "noeviction")
    worker = spawn("out-of-memory", LCSTREAM_MAX_OPEN_MESSAGES="10", LCSTREAM_TAKEOVER_AFTER_MS="1000")
    await wait_for_log(worker, "claimed")
    for episode in range(3):
        await fault_redis.config_set("maxmemory", 1)
        try:
            await wait_for(more_lines(worker, "write-refused", episode), what=f"refusal {episode + 1}")
            if episode == 0:  # held past the takeover time: the leases must be renewed meanwhile
                longest_idle_ms = await longest_idle_for(fault_redis, seconds=2.0)
                assert 0 <= longest_idle_ms < 1000
        finally:
            await fault_redis.config_set("maxmemory", 0)
        await wait_for(more_lines(worker, "write-resumed", episode), what=f"resumption {episode + 1}")
    await wait_for(lambda: all_outcomes(fault_redis, list(messages)), timeout_s=120, what="every outcome")
    assert worker.terminate() == 0

    await assert_all_match_oracle(fault_redis, messages)
    assert await pending_count(fault_redis) == 0
    assert await fault_redis.xlen("lcstream:dead") == 0
    written = [len(await read_frames(fault_redis, message_id)) for message_id in messages]
    assert stopped_stats(worker)["frames"] == sum(written)  # refused frames were never counted
    assert "OOM" in lines_of(worker, "write-refused")[0]["error"]
