"""Tests of streams/producer.py on fakeredis and on the real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from lcstream.streams.errors import InvalidMessageIdError, MessageIdInUseError, PartitionCountError
from lcstream.streams.events import Event, now_ms
from lcstream.streams.keys import Keyspace, partition_of
from lcstream.streams.partition_count import record_partition_count
from lcstream.streams.producer import MessageEndedError, ProducerClosedError, StreamProducer
from lcstream.streams.publish import publish_events
from tests.helpers import wait_for

MESSAGE_ID = "lc_run--42"
KEYS = Keyspace().message(MESSAGE_ID)


def text_message(message_id: str = MESSAGE_ID, words: int = 3) -> list[Event]:
    deltas: list[Event] = [
        {"event": "content-block-delta", "index": 0, "delta": {"type": "text-delta", "text": f"w{n} \u00e9"}}
        for n in range(words)
    ]
    return [
        {"event": "message-start", "role": "ai", "id": message_id},
        {"event": "content-block-start", "index": 0, "content": {"type": "text", "text": ""}},
        *deltas,
        {"event": "content-block-finish", "index": 0, "content": {"type": "text", "text": "..."}},
        {"event": "message-finish", "usage": {"input_tokens": 1, "output_tokens": words, "total_tokens": 4}},
    ]


async def entries(redis: Redis, key: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    result: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(key)
    return result


async def stored_events(redis: Redis, key: str = KEYS.events) -> list[Any]:
    return [orjson.loads(fields[b"e"]) for _, fields in await entries(redis, key)]


async def test_publish_events_writes_every_event_and_one_dispatch_entry(any_redis: Redis) -> None:
    events = text_message()
    before = now_ms()
    message_id = await publish_events(any_redis, events)
    after = now_ms()

    assert message_id == MESSAGE_ID
    written = await entries(any_redis, KEYS.events)
    assert [entry_id for entry_id, _ in written] == [f"0-{n}".encode() for n in range(1, len(events) + 1)]
    for (_, fields), event in zip(written, events, strict=True):
        assert set(fields) == {b"e", b"t"}
        assert orjson.loads(fields[b"e"]) == event
        assert before <= int(fields[b"t"]) <= after

    dispatch = await entries(any_redis, KEYS.dispatch)
    assert len(dispatch) == 1
    assert dispatch[0][1] == {b"m": MESSAGE_ID.encode()}
    assert sorted(await any_redis.keys("*")) == sorted([KEYS.events.encode(), KEYS.dispatch.encode()])


async def test_a_retried_publish_writes_nothing_twice(any_redis: Redis) -> None:
    events = text_message()
    await publish_events(any_redis, events)
    first = await entries(any_redis, KEYS.events)

    assert await publish_events(any_redis, events) == MESSAGE_ID

    assert await entries(any_redis, KEYS.events) == first
    assert len(first) == len(events)
    assert await any_redis.xlen(KEYS.dispatch) == 1


async def test_a_retry_after_a_partial_write_completes_the_message_once(any_redis: Redis) -> None:
    events = text_message(words=5)
    await publish_events(any_redis, events[:3])  # the producer died after three events

    await publish_events(any_redis, events)

    assert await stored_events(any_redis) == events
    assert [entry_id for entry_id, _ in await entries(any_redis, KEYS.events)] == [
        f"0-{n}".encode() for n in range(1, len(events) + 1)
    ]
    assert await any_redis.xlen(KEYS.dispatch) == 1


async def test_publish_events_accepts_an_async_iterable(any_redis: Redis) -> None:
    events = text_message()

    async def produce() -> AsyncIterator[Event]:
        for event in events:
            yield event

    assert await publish_events(any_redis, produce()) == MESSAGE_ID
    assert await stored_events(any_redis) == events


async def test_small_batches_write_everything_in_order(
    any_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = text_message(words=6)
    assert len(events) == 10
    batches: list[int] = []
    make_pipeline = any_redis.pipeline

    def spy_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make_pipeline(*args, **kwargs)
        execute = pipe.execute

        async def spy_execute(*exec_args: Any, **exec_kwargs: Any) -> Any:
            batches.append(len(pipe.command_stack))
            return await execute(*exec_args, **exec_kwargs)

        monkeypatch.setattr(pipe, "execute", spy_execute)
        return pipe

    monkeypatch.setattr(any_redis, "pipeline", spy_pipeline)

    async with StreamProducer(any_redis, MESSAGE_ID, max_batch=3) as producer:
        for event in events:
            await producer.send(event)
    assert producer.written == 10

    assert await stored_events(any_redis) == events
    assert sum(batches) == 10 - 3  # the first three went with the announcement, in one script
    assert len(batches) >= 3
    assert max(batches) <= 3
    assert await any_redis.xlen(KEYS.dispatch) == 1


async def test_namespace_and_node_go_into_the_dispatch_entry(any_redis: Redis) -> None:
    await publish_events(any_redis, text_message(), namespace=["graph", "agent:1"], node="agent")
    [(_, fields)] = await entries(any_redis, KEYS.dispatch)
    assert fields[b"m"] == MESSAGE_ID.encode()
    assert orjson.loads(fields[b"ns"]) == ["graph", "agent:1"]
    assert fields[b"node"] == b"agent"


async def test_explicit_message_id_wins_over_the_start_event(any_redis: Redis) -> None:
    events = text_message(message_id="chatcmpl-abc")
    assert await publish_events(any_redis, events, message_id="msg_01X") == "msg_01X"
    keys = Keyspace().message("msg_01X")
    assert await stored_events(any_redis, keys.events) == events
    [(_, fields)] = await entries(any_redis, keys.dispatch)
    assert fields[b"m"] == b"msg_01X"
    assert await any_redis.exists(Keyspace().message("chatcmpl-abc").events) == 0


async def test_an_explicit_message_id_needs_no_start_event(any_redis: Redis) -> None:
    events: list[Event] = [{"event": "error", "message": "boom", "code": "model_error"}]
    assert await publish_events(any_redis, events, message_id="msg_01X") == "msg_01X"
    assert await stored_events(any_redis, Keyspace().message("msg_01X").events) == events


@pytest.mark.parametrize(
    "events",
    [
        [{"event": "message-start", "role": "ai"}, {"event": "message-finish"}],
        [{"event": "message-start", "role": "ai", "id": 42}],
        [{"event": "error", "message": "boom"}],
        [],
    ],
    ids=["start-without-id", "start-with-int-id", "no-start", "no-events"],
)
async def test_no_message_id_is_a_value_error(any_redis: Redis, events: list[Event]) -> None:
    with pytest.raises(ValueError, match=r"message_id|no events"):
        await publish_events(any_redis, events)
    assert await any_redis.keys("*") == []


async def test_an_invalid_message_id_is_refused_before_any_write(any_redis: Redis) -> None:
    with pytest.raises(InvalidMessageIdError):
        await publish_events(any_redis, text_message(message_id="lc_run--{0}"))
    with pytest.raises(InvalidMessageIdError):
        StreamProducer(any_redis, "a b")
    assert await any_redis.keys("*") == []


async def test_send_after_aclose_raises(any_redis: Redis) -> None:
    producer = StreamProducer(any_redis, MESSAGE_ID)
    await producer.send(text_message()[0])
    await producer.aclose()
    await producer.aclose()  # idempotent
    with pytest.raises(ProducerClosedError, match=MESSAGE_ID):
        await producer.send({"event": "message-finish"})
    assert await any_redis.xlen(KEYS.events) == 1


@pytest.mark.parametrize("end", [{"event": "message-finish"}, {"event": "error", "message": "boom"}])
async def test_nothing_is_sent_after_the_end(any_redis: Redis, end: Event) -> None:
    events = [*text_message()[:2], end]
    async with StreamProducer(any_redis, MESSAGE_ID) as producer:
        for event in events:
            await producer.send(event)
        assert producer.ended
        with pytest.raises(MessageEndedError, match="after its end"):
            await producer.send({"event": "message-finish"})
    assert await any_redis.xlen(KEYS.events) == len(events)
    with pytest.raises(MessageEndedError):
        await publish_events(any_redis, [*events, text_message()[-1]], message_id="two-ends")
    assert await any_redis.xlen(Keyspace().message("two-ends").events) == len(events)  # up to its end


async def test_flush_waits_until_the_events_are_in_redis(any_redis: Redis) -> None:
    events = text_message()
    producer = StreamProducer(any_redis, MESSAGE_ID)
    for event in events[:2]:
        await producer.send(event)
    await producer.flush()
    assert producer.written == 2
    assert await stored_events(any_redis) == events[:2]
    for event in events[2:]:
        await producer.send(event)
    await producer.aclose()
    assert await stored_events(any_redis) == events


async def test_partitioned_keyspace_uses_the_partition_of_each_message(any_redis: Redis) -> None:
    keyspace = Keyspace(partitions=4)
    ids = ["lc_run--42", "msg_01X", "chatcmpl-abc", "a"]
    assert sorted(partition_of(m, 4) for m in ids) == [0, 1, 2, 3]
    for message_id in ids:
        await publish_events(any_redis, text_message(message_id), keyspace=keyspace)

    for message_id in ids:
        k = partition_of(message_id, 4)
        keys = keyspace.message(message_id)
        assert keys.events == f"lcstream:{{{k}}}:{message_id}:events"
        assert await stored_events(any_redis, keys.events) == text_message(message_id)
        dispatch = await entries(any_redis, f"lcstream:{{{k}}}:dispatch")
        assert [fields[b"m"] for _, fields in dispatch] == [message_id.encode()]
    assert await any_redis.exists("lcstream:{0}:dispatch", "lcstream:{4}:dispatch") == 1


async def test_a_producer_configured_for_another_partition_count_writes_nothing(any_redis: Redis) -> None:
    workers = Keyspace(partitions=4)
    await record_partition_count(any_redis, workers)  # what the first worker of the prefix does
    with pytest.raises(PartitionCountError, match="use 4 partitions"):
        await publish_events(any_redis, text_message(), keyspace=Keyspace(partitions=1))
    assert await any_redis.keys("lcstream:{*") == []
    assert await publish_events(any_redis, text_message(), keyspace=workers) == MESSAGE_ID
    with pytest.raises(PartitionCountError):  # a worker configured for another count refuses too
        await record_partition_count(any_redis, Keyspace(partitions=2))


async def test_an_id_in_use_by_other_events_is_refused_and_nothing_is_written(any_redis: Redis) -> None:
    await publish_events(any_redis, text_message(words=3))
    before = await entries(any_redis, KEYS.events)
    with pytest.raises(MessageIdInUseError, match="nothing written"):
        await publish_events(any_redis, text_message(words=5)[:1] + text_message(words=2)[1:])
    with pytest.raises(MessageIdInUseError):  # a live producer under a taken id
        async with StreamProducer(any_redis, MESSAGE_ID) as producer:
            await producer.send({**text_message()[0], "metadata": {"another": "message"}})
    assert await entries(any_redis, KEYS.events) == before
    assert await any_redis.xlen(KEYS.dispatch) == 1


async def test_a_lingering_writer_batches_events_yet_a_flush_or_the_end_writes_at_once(
    real_redis: Redis,
) -> None:
    events_key = Keyspace().message("lingers").events
    producer = StreamProducer(real_redis, "lingers", linger_s=30.0)  # far longer than this test waits
    for n in range(3):
        await producer.send(
            {"event": "content-block-delta", "index": 0, "delta": {"type": "text-delta", "text": str(n)}}
        )
    async with asyncio.timeout(5):
        await producer.flush()  # cuts the linger short
    assert await real_redis.xlen(events_key) == 3
    await producer.send({"event": "message-finish"})  # the end: written without waiting the linger

    async def all_four() -> bool:
        return int(await real_redis.xlen(events_key)) == 4

    await wait_for(all_four, timeout_s=5, what="the end written before the linger passed")
    await producer.aclose()
