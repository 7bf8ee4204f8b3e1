"""Operator view of `P:dead`: list dead letters, and re-run a dead-lettered message."""

from __future__ import annotations

from dataclasses import dataclass

from lcstream.streams.cluster import RedisClient, node_for
from lcstream.streams.errors import LcstreamError, MessageNotFoundError
from lcstream.streams.frames import Outcome
from lcstream.streams.keys import Keyspace

# KEYS: E(M), O(M), R(M), D(k). ARGV: M. Clears the failed run and announces M again.
RETRY_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('PERSIST', KEYS[1])
return redis.call('XADD', KEYS[4], '*', 'm', ARGV[1], 'retry', '1')
"""

PAGE = 500  # dead letters read at a time


class RetryRefusedError(LcstreamError):
    """The message can't be re-run (it completed, or its events expired)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One `P:dead` entry."""

    entry_id: str
    message_id: str
    reason: str
    error: str
    deliveries: int
    dispatch_id: str
    time_ms: int | None


def _text(fields: dict[bytes, bytes], name: bytes) -> str:
    return fields.get(name, b"").decode(errors="replace")


async def list_dead_letters(
    redis: RedisClient, keyspace: Keyspace, *, count: int = 100, message_id: str | None = None
) -> list[DeadLetter]:
    """The newest `count` dead letters (of one message, if given), newest first."""
    letters: list[DeadLetter] = []
    cursor = "+"
    page_size = PAGE if message_id is not None else min(PAGE, count)
    while len(letters) < count:
        page = await redis.xrevrange(keyspace.dead, max=cursor, count=page_size)
        for entry_id, fields in page:
            if message_id is not None and _text(fields, b"m") != message_id:
                continue
            time_ms = _text(fields, b"t")
            letter = DeadLetter(
                entry_id=entry_id.decode(),
                message_id=_text(fields, b"m"),
                reason=_text(fields, b"reason"),
                error=_text(fields, b"error"),
                deliveries=int(_text(fields, b"deliveries") or 0),
                dispatch_id=_text(fields, b"dispatch_id"),
                time_ms=int(time_ms) if time_ms.isdigit() else None,
            )
            letters.append(letter)
        if len(page) < page_size:
            break
        cursor = f"({page[-1][0].decode()}"
    return letters[:count]


async def retry_dead_letter(redis: RedisClient, keyspace: Keyspace, message_id: str) -> str:
    """Clear M's failed outcome and frames, announce it again; remove its dead letters.

    Returns the new dispatch entry id. The rerun rebuilds from the stored events,
    so it succeeds where the cause was outside them (a timeout, workers dying)
    or where the limits changed; frames restart at seq 1.

    Raises:
        RetryRefusedError: M completed.
        MessageNotFoundError: its events are gone (expired or never written).
    """
    keys = keyspace.message(message_id)
    raw = await redis.get(keys.result)
    if raw is not None and Outcome.from_json(raw).status == "completed":
        raise RetryRefusedError(f"message {message_id} completed; there is nothing to retry")
    retry = (await node_for(redis, keys.dispatch)).register_script(RETRY_LUA)  # keys share a slot
    dispatch_id = await retry(keys=[keys.events, keys.out, keys.result, keys.dispatch], args=[message_id])
    if not dispatch_id:
        raise MessageNotFoundError(
            f"events of {message_id} are gone (expired or never written): publish them again"
        )
    announced = bytes(dispatch_id).decode()
    # A worker may already have dead-lettered the rerun: keep letters of the new dispatch entry.
    letters = await list_dead_letters(redis, keyspace, count=10_000, message_id=message_id)
    stale = [d.entry_id for d in letters if d.dispatch_id != announced]
    if stale:
        await redis.xdel(keyspace.dead, *stale)
    return announced


async def delete_dead_letters(redis: RedisClient, keyspace: Keyspace, message_id: str) -> int:
    """Remove every dead letter of `message_id` (its keys expire with their retention); returns how many.

    Raises:
        MessageNotFoundError: it has none.
    """
    keyspace.message(message_id)  # a valid id, or InvalidMessageIdError
    letters = await list_dead_letters(redis, keyspace, count=10_000, message_id=message_id)
    if not letters:
        raise MessageNotFoundError(f"message {message_id} has no dead letters")
    return int(await redis.xdel(keyspace.dead, *[d.entry_id for d in letters]))
