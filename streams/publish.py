"""`publish_events()`: a whole message's events, written and announced in one retry-safe call.

Publishing the same events again writes nothing; a publish cut short is
completed by running it again (`StreamProducer` resumes after what is stored).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any

import orjson

from lcstream.streams.cluster import RedisClient
from lcstream.streams.errors import MessageIdInUseError
from lcstream.streams.events import EVENT_FIELD, Event
from lcstream.streams.keys import Keyspace, default_keyspace
from lcstream.streams.producer import StreamProducer


async def publish_events(
    redis: RedisClient,
    events: Iterable[Event] | AsyncIterable[Event],
    *,
    message_id: str | None = None,
    keyspace: Keyspace | None = None,
    namespace: list[str] | None = None,
    node: str | None = None,
) -> str:
    """Write all `events` of one message and announce it; return its message id.

    The id defaults to the `id` of the first event (its `message-start`).
    Publishing is a retry-safe operation: the same events again write nothing,
    and a publish cut short is completed by running it again.

    Raises:
        MessageIdInUseError: other events are stored under the id (nothing is written).
        MessageEndedError: an event follows the message's end.
    """
    listed = [dict(event) async for event in _aiter(events)]
    if not listed:
        raise ValueError("no events to publish")
    chosen = message_id or _id_of_start(listed[0])
    space = keyspace or default_keyspace()
    entries = await redis.xrange(space.message(chosen).events)
    stored = [orjson.loads(fields.get(EVENT_FIELD, b"null")) for _, fields in entries]
    wanted = [orjson.loads(orjson.dumps(event)) for event in listed]
    if stored == wanted:
        return chosen  # published before: nothing to do
    if stored and (len(stored) > len(wanted) or wanted[: len(stored)] != stored):
        raise MessageIdInUseError(
            f"message {chosen} already has {len(stored)} events, and these {len(wanted)} differ from them: "
            "nothing written"
        )
    async with StreamProducer(
        redis, chosen, keyspace=space, namespace=namespace, node=node, first_seq=len(stored) + 1
    ) as producer:
        for event in listed[len(stored) :]:
            await producer.send(event)
    return chosen


def _id_of_start(event: Mapping[str, Any]) -> str:
    if event.get("event") != "message-start" or not isinstance(event.get("id"), str):
        raise ValueError("pass message_id, or start with a message-start event that has an id")
    return str(event["id"])


async def _aiter(events: Iterable[Event] | AsyncIterable[Event]) -> AsyncIterable[Event]:
    if isinstance(events, AsyncIterable):
        async for event in events:
            yield event
    else:
        for event in events:
            yield event
