"""When a follower ends a run whose producer died: only once every listed message has ended, and only
when the run's last sign of life (by producer time) is older than the run idle timeout."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from lcstream.streams.attach_run import attach_run
from lcstream.streams.errors import RunFailedError
from lcstream.streams.events import now_ms
from lcstream.streams.frames import Outcome
from lcstream.streams.keys import Keyspace
from lcstream.streams.run_index import run_status

SPACE = Keyspace()
HOUR_MS = 3_600_000


async def a_run_of_one_message(redis: Redis, run_id: str, *, last_sign_ms: int, ended: bool) -> None:
    """X(R) listing one message whose last event was written at `last_sign_ms` (ended, or still open)."""
    message_id = f"{run_id}-m"
    await redis.xadd(SPACE.run(run_id).index, {"m": message_id, "t": last_sign_ms - 1000}, id="0-1")
    events = SPACE.message(message_id).events
    await redis.xadd(events, {"e": b'{"event":"message-start"}', "t": last_sign_ms}, id="0-1")
    if ended:
        await redis.set(
            SPACE.message(message_id).result, Outcome.failed("its producer died", "idle_timeout").to_json()
        )


async def follow_all(redis: Redis, run_id: str) -> None:
    async for _ in attach_run(redis, run_id, keyspace=SPACE, block_ms=100, run_idle_timeout_s=300):
        pass


async def test_a_late_follower_of_a_long_dead_run_ends_it_at_once(real_redis: Redis) -> None:
    await a_run_of_one_message(real_redis, "long-dead", last_sign_ms=now_ms() - HOUR_MS, ended=True)
    started = time.monotonic()
    with pytest.raises(RunFailedError) as failed:
        await asyncio.wait_for(follow_all(real_redis, "long-dead"), 10)
    assert (failed.value.status, failed.value.code) == ("failed", "idle_timeout")
    assert time.monotonic() - started < 5  # not another idle timeout of waiting
    assert await run_status(real_redis, SPACE, "long-dead") == "failed"  # for every other follower too


@pytest.mark.parametrize(
    ("last_sign", "ended"), [("an hour ago", False), ("just now", True)], ids=["open-message", "recent"]
)
async def test_a_run_with_an_open_message_or_recent_life_is_not_ended(
    real_redis: Redis, last_sign: str, ended: bool
) -> None:
    run_id = f"alive-{last_sign.replace(' ', '-')}"
    sign_ms = now_ms() - HOUR_MS if last_sign == "an hour ago" else now_ms()
    await a_run_of_one_message(real_redis, run_id, last_sign_ms=sign_ms, ended=ended)
    follower = asyncio.create_task(follow_all(real_redis, run_id))
    done, _ = await asyncio.wait({follower}, timeout=1.0)  # ten quiet reads: each one looks at the run
    assert not done and await run_status(real_redis, SPACE, run_id) == "running"
    follower.cancel()
    await asyncio.gather(follower, return_exceptions=True)
