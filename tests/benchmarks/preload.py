"""Writing workloads into Redis with lcstream's producer, and RDB snapshots of them.

A preloaded workload is written once, saved as an RDB file, and every system's run
starts a fresh redis-server from a copy of it: identical input, no re-publishing.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from pathlib import Path

from redis.asyncio import Redis

from lcstream.streams.publish import publish_events
from tests.benchmarks.messages import Event
from tests.benchmarks.processes import Processes

CONCURRENT_PRODUCERS = 200


async def publish_all(redis: Redis, messages: Sequence[Sequence[Event]]) -> None:
    """Publish every message with `publish_events`, `CONCURRENT_PRODUCERS` at a time."""
    for start in range(0, len(messages), CONCURRENT_PRODUCERS):
        batch = messages[start : start + CONCURRENT_PRODUCERS]
        await asyncio.gather(*(publish_events(redis, events) for events in batch))


async def snapshot(directory: Path, messages: Sequence[Sequence[Event]]) -> Path:
    """An RDB file holding `messages`, written and announced by lcstream's producer."""
    with Processes(directory) as processes:
        server = processes.redis()
        redis = Redis.from_url(server.url)
        try:
            await publish_all(redis, messages)
            await redis.save()
        finally:
            await redis.aclose()
        saved = processes.directory / "seed.rdb"
        shutil.move(processes.directory / "redis-0" / "dump.rdb", saved)
    return saved
