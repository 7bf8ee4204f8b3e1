"""Acceptance: subscribe() joined at random moments during 50 streaming messages, cut off at a random
frame and resumed from the last seq it saw, reconstructs every message exactly."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from lcstream.config import load_settings
from lcstream.streams.frames import TERMINAL_KINDS, Frame
from lcstream.streams.producer import StreamProducer
from lcstream.streams.reader import read_frames
from lcstream.streams.subscribe import subscribe
from lcstream.worker.engine.runner import Worker
from tests.conftest import conformance_cases

STREAMED = [c for c in conformance_cases() if 10 <= len(c["events"]) <= 50]
MESSAGES = 50
PACE_S = 0.004

schedules = st.lists(
    st.tuples(st.floats(min_value=0, max_value=0.25), st.integers(min_value=0, max_value=40)),
    min_size=MESSAGES,
    max_size=MESSAGES,
)


async def stream(redis: Redis, message_id: str, events: list[dict[str, Any]]) -> None:
    async with StreamProducer(redis, message_id) as producer:
        for event in events:
            await producer.send(event)
            await asyncio.sleep(PACE_S)  # the producer's pace: the workload, not synchronization


async def follow(redis: Redis, message_id: str, start_after_s: float, cut_after: int) -> list[Frame]:
    """Join late, drop the connection after `cut_after` frames, resume from the last seq seen."""
    await asyncio.sleep(start_after_s)
    frames: list[Frame] = []
    async for frame in subscribe(redis, message_id, quiet_check_s=0.5):
        frames.append(frame)
        if len(frames) >= cut_after or frame.kind in TERMINAL_KINDS:
            break  # leaving the loop closes the subscription: a forced disconnect
    if frames and frames[-1].kind in TERMINAL_KINDS:
        return frames
    last = frames[-1].seq if frames else 0
    frames += [f async for f in subscribe(redis, message_id, after=last, quiet_check_s=0.5)]
    return frames


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=schedules)
async def test_subscribe_from_random_points_reconstructs_every_message(
    real_redis: Redis, schedule: list[tuple[float, int]]
) -> None:
    run = uuid.uuid4().hex[:8]
    ids = [f"sub-{run}-{i}" for i in range(MESSAGES)]
    worker = Worker(real_redis, load_settings(consumer=f"w-{run}", block_ms=50))
    worker_task = asyncio.create_task(worker.run())
    try:
        producers = [stream(real_redis, m, STREAMED[i % len(STREAMED)]["events"]) for i, m in enumerate(ids)]
        followers = [follow(real_redis, m, start, cut) for m, (start, cut) in zip(ids, schedule, strict=True)]
        results = await asyncio.wait_for(asyncio.gather(*followers, *producers), timeout=60)
    finally:
        worker.stop()
        await worker_task
    for message_id, got in zip(ids, results[:MESSAGES], strict=True):
        stored = await read_frames(real_redis, message_id)
        assert got == stored, message_id
        assert [f.seq for f in got] == list(range(1, len(stored) + 1))
