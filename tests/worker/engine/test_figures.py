"""A worker's figures in `P:workers`: published while it runs, equal to its own counters, withdrawn when
it stops; fields of gone workers are pruned, live ones never."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable
from functools import partial
from typing import cast

import orjson
from redis.asyncio import Redis

from lcstream.streams.keys import Keyspace
from lcstream.streams.publish import publish_events
from lcstream.worker.engine.figures import FiguresPublisher
from lcstream.worker.gateway.fleet import parse_figures
from tests.helpers import running_worker, wait_for
from tests.worker.engine.mixes import poison, write_mix
from tests.worker.gateway.support import text_events

WORKERS = Keyspace().workers


async def _published(redis: Redis, consumer: str, completed: int) -> bool:
    figures = parse_figures(await _hash(redis)).get(consumer)
    return figures is not None and figures.ended.get("completed", 0) == completed


async def test_a_running_worker_publishes_its_counters_and_withdraws_them_when_it_stops(
    fake_redis: Redis,
) -> None:
    async with running_worker(fake_redis, consumer="w-fig", figures_interval_s=0.05) as worker:
        await publish_events(fake_redis, text_events("fig-ok", ["hello ", "there"]))
        await write_mix(fake_redis, [poison("fig-bad", "invalid_json", random.Random(3), 1)], Keyspace())
        await wait_for(partial(_published, fake_redis, "w-fig", 1), what="the completion published")

        async def settled() -> bool:
            figures = parse_figures(await _hash(fake_redis))["w-fig"]
            return sum(figures.ended.values()) == worker.stats.completed + worker.stats.failed == 2

        await wait_for(settled, what="both outcomes published")
        figures = parse_figures(await _hash(fake_redis))["w-fig"]
        assert figures.events == worker.stats.events and figures.frames == worker.stats.frames
        assert figures.ended == {"completed": 1, "failed:invalid_json": 1}
        assert figures.delay_counts[-1] >= 1 and figures.delay_le[-1] is None
        assert figures.open_messages == worker.open_messages and not figures.stopping
    assert await _hash(fake_redis) == {}  # withdrawn on stop


async def test_pruning_removes_silent_and_unreadable_fields_and_keeps_live_ones(fake_redis: Redis) -> None:
    now_ms = int(time.time() * 1000)
    await cast("Awaitable[int]", fake_redis.hset(WORKERS, mapping={
        "gone": orjson.dumps({"time_ms": now_ms - 601_000}),
        "junk": b"\xff not json",
        "quiet-but-alive": orjson.dumps({"time_ms": now_ms - 599_000}),
    }))  # fmt: skip
    async with running_worker(fake_redis, consumer="w-live", figures_interval_s=0.05) as worker:
        publisher = FiguresPublisher(fake_redis, worker.state)
        await publisher.publish()
        await publisher.prune()
        assert set(await _hash(fake_redis)) == {b"quiet-but-alive", b"w-live"}


async def _hash(redis: Redis) -> dict[bytes, bytes]:
    return await cast("Awaitable[dict[bytes, bytes]]", redis.hgetall(WORKERS))
