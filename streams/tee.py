"""Copying a live `AsyncChatModelStream` into Redis while its caller still consumes it."""

from __future__ import annotations

import asyncio
import contextlib

from langchain_core.language_models.chat_model_stream import AsyncChatModelStream

from lcstream.streams.cluster import RedisClient
from lcstream.streams.events import Event
from lcstream.streams.keys import Keyspace
from lcstream.streams.producer import StreamProducer


async def tee_stream(
    redis: RedisClient,
    stream: AsyncChatModelStream,
    *,
    message_id: str | None = None,
    keyspace: Keyspace | None = None,
    namespace: list[str] | None = None,
    node: str | None = None,
    run_id: str | None = None,
) -> str:
    """Write every protocol event of `stream` to Redis as it happens; return the message id.

    Run it beside the consumer, e.g. in a `TaskGroup`:
    `tg.create_task(tee_stream(redis, stream))` while iterating `stream.text`.
    The stream's projections are replay buffers, so both see every event.
    A model that raises (or is cancelled) still ends the message: an `error`
    event with the exception's text (code `model_error`, or `cancelled`) is
    written in its place, so no announced message is left open. `run_id`
    announces it as a message of run R (`tee_run` passes it).
    """
    producer: StreamProducer | None = None

    def producer_for(event: Event | None) -> StreamProducer:
        nonlocal producer
        if producer is None:
            start_id = event.get("id") if event and event.get("event") == "message-start" else None
            chosen = message_id or start_id or stream.message_id
            if not chosen:
                raise ValueError("the stream has no message id yet; pass message_id")
            producer = StreamProducer(
                redis, str(chosen), keyspace=keyspace, namespace=namespace, node=node, run_id=run_id
            )
        return producer

    try:
        async for event in stream:
            await producer_for(event).send(event)
    except asyncio.CancelledError:
        await _end_with_error(producer_for(None), "cancelled", "cancelled")
        raise
    except Exception as exc:
        await _end_with_error(producer_for(None), str(exc) or type(exc).__name__, "model_error")
    finally:
        if producer is not None:
            await asyncio.shield(producer.aclose())
    return producer_for(None).message_id


async def _end_with_error(producer: StreamProducer, message: str, code: str) -> None:
    if producer.ended:  # it ended before the failure: nothing may follow its end
        return
    with contextlib.suppress(Exception):
        await asyncio.shield(producer.send({"event": "error", "message": message, "code": code}))
