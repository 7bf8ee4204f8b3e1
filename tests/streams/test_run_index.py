"""The run index `X(R)` on a real redis-server: entries in start order with explicit ids, one end only,
run notices, the retention once ended; and the worker copying R into the start frame."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from redis.asyncio import Redis

from lcstream.streams.frames import FrameKind
from lcstream.streams.keys import Keyspace
from lcstream.streams.producer import StreamProducer
from lcstream.streams.reader import read_frames
from lcstream.streams.run_index import RunIndex, end_run
from tests.helpers import collect_pubsub, run_burst
from tests.worker.gateway.support import text_events

SPACE = Keyspace()


async def test_messages_are_listed_in_the_order_they_started_and_the_run_ends_once(real_redis: Redis) -> None:
    index = RunIndex(real_redis, SPACE, "run-order", retention_s=600)
    names = [f"m-{n}" for n in range(20)]
    pubsub = real_redis.pubsub()
    await pubsub.subscribe(SPACE.run_notices)
    await index.add(names[0], namespace=None, node="n")
    assert 0 < await real_redis.ttl(SPACE.run("run-order").index) <= 600  # a run never ended expires too
    await asyncio.gather(
        *(index.add(m, namespace=["sub:1"] if n % 2 else None, node="n") for n, m in enumerate(names) if n)
    )
    assert await end_run(real_redis, SPACE, "run-order", "completed", retention_s=60)
    late = {"message": "too late", "code": "idle_timeout"}
    assert not await end_run(real_redis, SPACE, "run-order", "failed", retention_s=60, error=late)
    notices = await collect_pubsub(pubsub, done=lambda got: len(got) >= 2)
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    entries = await real_redis.xrange(SPACE.run("run-order").index)
    assert [entry_id.decode() for entry_id, _ in entries] == [f"0-{n}" for n in range(1, 22)]
    assert [fields[b"m"].decode() for _, fields in entries[:-1]] == names  # gather starts them in order
    assert entries[1][1][b"ns"] == b'["sub:1"]' and b"ns" not in entries[0][1]
    assert entries[-1][1][b"end"] == b"completed"
    assert 0 < await real_redis.ttl(SPACE.run("run-order").index) <= 60
    assert [orjson.loads(payload) for _, payload in notices] == [
        {"run_id": "run-order", "status": "started"}, {"run_id": "run-order", "status": "completed"}
    ]  # fmt: skip


async def test_an_end_names_a_known_status(real_redis: Redis) -> None:
    with pytest.raises(ValueError, match="a run ends"):
        await end_run(real_redis, SPACE, "run-x", "paused", retention_s=60)


async def test_the_worker_copies_the_run_into_the_start_frame_and_notices_only_for_a_run(
    real_redis: Redis,
) -> None:
    pubsub = real_redis.pubsub()
    await pubsub.subscribe(SPACE.notices)
    for message_id, run_id in (("in-run", "run-7"), ("alone", None)):
        async with StreamProducer(real_redis, message_id, run_id=run_id, node="answer") as producer:
            for event in text_events(message_id, ["hi"]):
                await producer.send(event)
    await run_burst(real_redis)
    starts = {m: (await read_frames(real_redis, m))[0] for m in ("in-run", "alone")}
    assert all(frame.kind is FrameKind.START for frame in starts.values())
    assert starts["in-run"].data["run_id"] == "run-7" and starts["in-run"].data["node"] == "answer"
    assert "run_id" not in starts["alone"].data  # v1's start frame, unchanged
    notices = await collect_pubsub(pubsub, done=lambda got: len(got) >= 4)
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    assert sorted((orjson.loads(payload) for _, payload in notices), key=str) == sorted([
        {"message_id": "in-run", "status": "started", "run_id": "run-7"},
        {"message_id": "in-run", "status": "completed", "run_id": "run-7"},
        {"message_id": "alone", "status": "started"},
        {"message_id": "alone", "status": "completed"},
    ], key=str)  # fmt: skip
