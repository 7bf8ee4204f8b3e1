"""Reading what a message left in Redis: its frames in `O(M)`, its outcome in `R(M)`, its events."""

from __future__ import annotations

from lcstream.streams.cluster import RedisClient
from lcstream.streams.events import Event, EventLimits, decode_event
from lcstream.streams.frames import Frame, Outcome
from lcstream.streams.keys import Keyspace, default_keyspace
from lcstream.streams.ordering import parse_entry_id

# How long a follower (`attach`, `subscribe`, `result`, `lcstream tail`) waits for a message of which
# nothing exists yet before it reports it not found: a typo must not hang (None: wait by design).
DEFAULT_WAIT_FOR_START_S = 10.0


async def read_outcome(
    redis: RedisClient, message_id: str, keyspace: Keyspace | None = None
) -> Outcome | None:
    """The stored outcome of M, or None while it has none."""
    raw = await redis.get((keyspace or default_keyspace()).message(message_id).result)
    return None if raw is None else Outcome.from_json(raw)


async def read_frames(
    redis: RedisClient, message_id: str, keyspace: Keyspace | None = None, *, after: int = 0
) -> list[Frame]:
    """Every frame of M in `O(M)` with seq above `after`, in order."""
    key = (keyspace or default_keyspace()).message(message_id).out
    entries = await redis.xrange(key, min=f"(0-{after}" if after else "-")
    return [Frame.from_body(parse_entry_id(entry_id)[1], fields[b"f"]) for entry_id, fields in entries]


async def read_events(
    redis: RedisClient,
    message_id: str,
    keyspace: Keyspace | None = None,
    *,
    limits: EventLimits | None = None,
) -> list[Event]:
    """Every stored event of M, decoded and checked, in entry order."""
    key = (keyspace or default_keyspace()).message(message_id).events
    checked = limits or EventLimits()
    return [decode_event(fields, checked) for _, fields in await redis.xrange(key)]
