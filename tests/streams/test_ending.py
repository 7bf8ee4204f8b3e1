"""Tests of streams/ending.py: a message's state from its events, ending one whose producer is gone."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from lcstream.streams.ending import MessageState, end_message, message_state, wait_until_ended
from lcstream.streams.keys import Keyspace
from lcstream.streams.producer import StreamProducer
from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_events

START = {"event": "message-start", "id": "m-1", "metadata": {}}
DELTA = {
    "event": "content-block-delta",
    "index": 0,
    "content_block": {"type": "text", "text": "hi", "index": 0},
}
FINISH = {"event": "message-finish"}
KEYS = Keyspace()


async def test_states_follow_the_last_event_and_the_outcome(any_redis: Redis) -> None:
    assert await message_state(any_redis, "absent") is MessageState.ABSENT
    await publish_events(any_redis, [START, DELTA], message_id="open")
    assert await message_state(any_redis, "open") is MessageState.OPEN
    await publish_events(any_redis, [START, FINISH], message_id="done")
    assert await message_state(any_redis, "done") is MessageState.COMPLETED
    await publish_events(any_redis, [START, DELTA], message_id="timed-out")
    await any_redis.set(KEYS.message("timed-out").result, b'{"status": "failed", "error": {}}')
    assert await message_state(any_redis, "timed-out") is MessageState.FAILED  # failed by a worker


async def test_end_message_appends_once_after_the_last_event_and_never_after_the_end(
    any_redis: Redis,
) -> None:
    await publish_events(any_redis, [START, DELTA], message_id="m-1")
    found = await end_message(any_redis, "m-1", message="lost", code="producer_lost")
    assert found is MessageState.OPEN
    entries = await any_redis.xrange(KEYS.message("m-1").events)
    assert [entry_id for entry_id, _ in entries] == [b"0-1", b"0-2", b"0-3"]
    assert (await read_events(any_redis, "m-1"))[-1] == {
        "event": "error",
        "message": "lost",
        "code": "producer_lost",
    }
    assert await end_message(any_redis, "m-1", message="again", code="cancelled") is MessageState.FAILED
    assert len(await read_events(any_redis, "m-1")) == 3
    # A producer that comes back late finds its next id taken: nothing of it lands before the end.
    late = StreamProducer(any_redis, "m-1")
    late._written = 2  # it had written 0-1 and 0-2
    await late.send(DELTA)
    await late.aclose()
    assert (await read_events(any_redis, "m-1"))[2]["event"] == "error"


async def test_end_message_creates_a_missing_message_only_when_asked(any_redis: Redis) -> None:
    assert await end_message(any_redis, "m-2", message="x", code="cancelled") is MessageState.ABSENT
    assert not await any_redis.exists(KEYS.message("m-2").events, KEYS.dispatch(0))
    assert (
        await end_message(any_redis, "m-2", message="x", code="cancelled", announce=True)
        is MessageState.ABSENT
    )
    assert await read_events(any_redis, "m-2") == [{"event": "error", "message": "x", "code": "cancelled"}]
    ((_, fields),) = await any_redis.xrange(KEYS.dispatch(0))
    assert fields == {b"m": b"m-2"}


async def test_wait_until_ended_returns_at_the_terminal_event_or_after_the_timeout(real_redis: Redis) -> None:
    await publish_events(real_redis, [START, DELTA], message_id="m-3")
    started = time.monotonic()
    assert await wait_until_ended(real_redis, "m-3", 0.3, block_ms=100) is MessageState.OPEN
    assert time.monotonic() - started >= 0.3

    async def finish_later() -> None:
        await asyncio.sleep(0.2)  # the producer's pace, not a synchronisation
        await end_message(real_redis, "m-3", message="stop", code="cancelled")

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(finish_later())
        started = time.monotonic()
        assert await wait_until_ended(real_redis, "m-3", 10) is MessageState.FAILED
    assert time.monotonic() - started < 5
