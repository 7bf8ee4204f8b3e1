"""Tests of streams/tee.py: a live model stream copied into Redis while its caller consumes it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.language_models.chat_model_stream import AsyncChatModelStream
from langchain_core.messages import AIMessageChunk, message_to_dict
from redis.asyncio import Redis

from lcstream.streams.events import Event
from lcstream.streams.frames import FrameKind, MessageAssembler
from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import read_events
from lcstream.streams.tee import tee_stream
from lcstream.worker.demo.models import (
    ScriptedChatModel,
    reasoning_chunks,
    text_chunks,
    tool_call_chunks,
    usage_chunk,
)

TIMEOUT_S = 10


def failing_model(
    script: Sequence[AIMessageChunk | Exception], chunk_delay_s: float = 0.0
) -> ScriptedChatModel:
    # `ScriptedChatModel(scripts=...)` can't take an Exception in a script: pydantic runs
    # AIMessageChunk's before-validator on it, which raises AttributeError. model_construct
    # skips that validation (see the report on worker/fake_models.py).
    return ScriptedChatModel.model_construct(scripts=[list(script)], chunk_delay_s=chunk_delay_s)


async def start(model: ScriptedChatModel) -> tuple[AsyncChatModelStream, str]:
    run_id = uuid.uuid4()
    stream = await model.astream_events("hi", {"run_id": run_id}, version="v3")
    return stream, f"lc_run--{run_id}"


async def consume_text(stream: AsyncChatModelStream) -> tuple[str, BaseException | None]:
    parts: list[str] = []
    try:
        async for delta in stream.text:
            parts.append(delta)
    except Exception as exc:
        return "".join(parts), exc
    return "".join(parts), None


async def tee_beside_consumer(
    redis: Redis, stream: AsyncChatModelStream, **kwargs: Any
) -> tuple[str, tuple[str, BaseException | None]]:
    async with asyncio.timeout(TIMEOUT_S), asyncio.TaskGroup() as tasks:
        tee = tasks.create_task(tee_stream(redis, stream, **kwargs))
        consumer = tasks.create_task(consume_text(stream))
    return tee.result(), consumer.result()


async def seen_in_process(stream: AsyncChatModelStream) -> tuple[list[Event], BaseException | None]:
    events: list[Event] = []
    try:
        async with asyncio.timeout(TIMEOUT_S):
            async for event in stream:
                events.append(dict(event))
    except Exception as exc:
        return events, exc
    return events, None


async def test_tee_copies_every_event_while_the_caller_reads_text(fake_redis: Redis) -> None:
    script = [
        *reasoning_chunks("think it through"),
        *text_chunks("h\u00e9llo there \U0001f642 world"),
        *tool_call_chunks("get_weather", "call_a1", '{"city": "Paris", "unit": "C"}'),
        usage_chunk(12, 30),
    ]
    stream, run_message_id = await start(ScriptedChatModel(scripts=[script]))

    message_id, (text, consumer_error) = await tee_beside_consumer(fake_redis, stream)

    assert message_id == run_message_id
    assert consumer_error is None
    assert text == "h\u00e9llo there \U0001f642 world"
    in_process, stream_error = await seen_in_process(stream)
    assert stream_error is None
    stored = await read_events(fake_redis, message_id)
    assert stored == in_process
    assert stored[0] == {"event": "message-start", "role": "ai", "id": message_id}
    assert stored[-1]["event"] == "message-finish"
    assert stored[-1]["usage"]["total_tokens"] == 42
    assert {e["delta"]["type"] for e in stored if e["event"] == "content-block-delta"} == {
        "text-delta",
        "reasoning-delta",
        "tool-call-delta",
    }
    assert await fake_redis.xlen(Keyspace().message(message_id).dispatch) == 1

    # What a worker makes of the stored events is what the caller's own stream made.
    frames = MessageAssembler(message_id).feed_all(stored)
    assert frames[-1].kind is FrameKind.OUTPUT
    assert frames[-1].data == message_to_dict(await stream.output)


async def test_tee_passes_message_id_namespace_and_node(fake_redis: Redis) -> None:
    stream, _ = await start(ScriptedChatModel(scripts=[text_chunks("one two")]))
    keyspace = Keyspace(prefix="tee", partitions=4)

    message_id, (text, _) = await tee_beside_consumer(
        fake_redis, stream, message_id="msg_01X", keyspace=keyspace, namespace=["graph"], node="agent"
    )

    assert message_id == "msg_01X"
    assert text == "one two"
    keys = keyspace.message("msg_01X")
    stored = await read_events(fake_redis, "msg_01X", keyspace)
    assert stored == (await seen_in_process(stream))[0]
    [(_, fields)] = await fake_redis.xrange(keys.dispatch)
    assert fields == {b"m": b"msg_01X", b"ns": b'["graph"]', b"node": b"agent"}


async def test_a_model_error_mid_stream_ends_the_message_with_an_error_event(fake_redis: Redis) -> None:
    model = failing_model([*text_chunks("partial answer so"), ValueError("provider overloaded")])
    stream, run_message_id = await start(model)

    message_id, (text, consumer_error) = await tee_beside_consumer(fake_redis, stream)

    assert message_id == run_message_id
    assert text == "partial answer so"
    assert isinstance(consumer_error, ValueError)
    stored = await read_events(fake_redis, message_id)
    assert stored[-1] == {"event": "error", "message": "provider overloaded", "code": "model_error"}
    in_process, stream_error = await seen_in_process(stream)
    assert isinstance(stream_error, ValueError)
    assert stored[:-1] == in_process
    assert [e["event"] for e in stored].count("error") == 1
    assert await fake_redis.xlen(Keyspace().message(message_id).dispatch) == 1


async def test_an_exception_without_text_is_named_by_its_type(fake_redis: Redis) -> None:
    stream, _ = await start(failing_model([*text_chunks("a b"), RuntimeError()]))
    message_id, _ = await tee_beside_consumer(fake_redis, stream)
    stored = await read_events(fake_redis, message_id)
    assert stored[-1] == {"event": "error", "message": "RuntimeError", "code": "model_error"}


async def test_a_model_failing_before_its_first_chunk_still_ends_the_message(fake_redis: Redis) -> None:
    stream, run_message_id = await start(failing_model([ConnectionError("refused")]))

    async with asyncio.timeout(TIMEOUT_S):
        message_id = await tee_stream(fake_redis, stream)

    assert message_id == run_message_id
    assert await read_events(fake_redis, message_id) == [
        {"event": "error", "message": "refused", "code": "model_error"}
    ]
    assert await fake_redis.xlen(Keyspace().message(message_id).dispatch) == 1


async def test_a_cancelled_tee_ends_the_message_as_cancelled(fake_redis: Redis) -> None:
    # A slow model (its own pacing), so the tee is cancelled mid-message.
    model = ScriptedChatModel(scripts=[text_chunks(" ".join(["word"] * 200))], chunk_delay_s=0.01)
    stream, message_id = await start(model)
    events_key = Keyspace().message(message_id).events
    tee = asyncio.create_task(tee_stream(fake_redis, stream))
    try:
        async with asyncio.timeout(TIMEOUT_S):
            # Polling a condition with a deadline; Redis has no event to wait on here.
            while await fake_redis.xlen(events_key) < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        tee.cancel()
        with pytest.raises(asyncio.CancelledError):
            await tee
    finally:
        await stream.aclose()

    stored = await read_events(fake_redis, message_id)
    assert stored[0]["event"] == "message-start"
    assert stored[-1] == {"event": "error", "message": "cancelled", "code": "cancelled"}
    assert len(stored) < 200
