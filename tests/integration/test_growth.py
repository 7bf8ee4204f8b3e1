"""Acceptance: nothing grows without bound over 5,000 messages (keys, dispatch stream, worker memory)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import orjson
import pytest
from redis.asyncio import Redis

from lcstream.streams.publish import publish_events
from tests import procfs
from tests.conftest import WorkerProcess, conformance_cases
from tests.helpers import wait_for

EVENTS = next(c for c in conformance_cases() if c["name"] == "single_tool_call")["events"]
DISPATCH = b"lcstream:{0}:dispatch"


def rss_mb(pid: int) -> float:
    return procfs.memory_kb(pid)["VmRSS"] / 1024


async def publish_many(redis: Redis, first: int, count: int) -> None:
    for start in range(first, first + count, 250):
        ids = range(start, min(start + 250, first + count))
        await asyncio.gather(*(publish_events(redis, EVENTS, message_id=f"g-{i}") for i in ids))


async def test_five_thousand_messages_leave_nothing_unbounded(
    real_redis: Redis, spawn_worker: Callable[..., WorkerProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    notices = real_redis.pubsub()
    await notices.subscribe("lcstream:messages")
    completed = 0

    async def count_completed(target: int) -> bool:
        nonlocal completed
        while (message := await notices.get_message(timeout=0.05)) is not None:
            if message["type"] == "message" and orjson.loads(message["data"])["status"] == "completed":
                completed += 1
        return completed >= target

    worker = spawn_worker(LCSTREAM_RETENTION_S="3", LCSTREAM_LOG_LEVEL="warning")
    rss: dict[int, float] = {}
    # Equal waves, each drained before the next: the two readings see the same load, so the
    # difference is what stayed behind, not what was in flight.
    for wave in range(20):
        await publish_many(real_redis, wave * 250, 250)
        await wait_for(functools.partial(count_completed, (wave + 1) * 250), timeout_s=60, what="a wave")
        rss[(wave + 1) * 250] = rss_mb(worker.process.pid)
    rss_at_1000, rss_at_5000 = rss[1000], rss[5000]
    await notices.aclose()  # type: ignore[no-untyped-call]
    assert completed == 5000

    async def only_infrastructure_left() -> bool:
        keys = [key async for key in real_redis.scan_iter(match="lcstream:*", count=1000)]
        return set(keys) <= {DISPATCH, b"lcstream:dead", b"lcstream:partitions", b"lcstream:workers"}

    # Every per-message key carried a TTL: after the retention they are all gone.
    await wait_for(only_infrastructure_left, timeout_s=30, what="per-message keys to expire")

    async def dispatch_trimmed() -> bool:
        return int(await real_redis.xlen(DISPATCH)) <= 200

    await wait_for(dispatch_trimmed, timeout_s=30, what="the dispatch stream to be trimmed")
    assert (await real_redis.xpending(DISPATCH, "workers"))["pending"] == 0
    growth = rss_at_5000 - rss_at_1000
    with capsys.disabled():
        print(
            f"\ngrowth: worker RSS {rss_at_1000:.1f} MB at 1,000 messages, {rss_at_5000:.1f} MB at 5,000 "
            f"(+{growth:.1f} MB); dispatch stream {await real_redis.xlen(DISPATCH)} entries"
        )
    assert growth < 20
    assert worker.terminate() == 0
