"""Rebuilding a stored message from its events: `lcstream replay` shows it, `reassemble` stores it.

`reassemble` is for after an upgrade (of langchain-core, or of lcstream's
checks): it runs the stored events of an ended message through a fresh
`MessageHandler`, the same path a worker takes, and when the result differs
rewrites `R(M)` and `O(M)` together, in one transaction, keeping their
remaining retention. Frames are rewritten too so that `O(M)`'s last frame and
`R(M)` never disagree; nothing is published on `L(M)`, since the message ended
before. Messages in flight are not touched (their worker owns them), nor are
messages failed for a reason outside their events (`GIVEN_UP_REASONS`:
`idle_timeout`, `max_deliveries`, ...), which their events alone can't reproduce.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import WatchError

from lcstream.config import Settings
from lcstream.streams.events import EventLimits
from lcstream.streams.frames import Frame, FrameKind, Outcome
from lcstream.streams.keys import Keyspace, MessageKeys
from lcstream.streams.reader import read_frames, read_outcome
from lcstream.worker.engine.announcement import Announcement
from lcstream.worker.engine.handler import GIVEN_UP_REASONS, Entry, MessageHandler

log = structlog.get_logger("lcstream.jobs")


def rebuild(
    keys: MessageKeys,
    entries: Sequence[Entry],
    settings: Settings,
    *,
    namespace: list[str] | None = None,
    node: str | None = None,
) -> tuple[MessageHandler, list[Frame]]:
    """Run a message's event entries through a fresh handler; return it and the frames it made."""
    handler = MessageHandler(
        Announcement(keys, namespace, node), b"0-0", deliveries=1,
        limits=EventLimits(settings.max_event_bytes, settings.max_json_depth),
        max_events=settings.max_events_per_message,
    )  # fmt: skip
    handler.accept(entries)
    write = handler.take_write()
    return handler, list(write.frames) if write is not None else []


async def reassemble_message(
    redis: Redis, keyspace: Keyspace, settings: Settings, message_id: str
) -> dict[str, Any]:
    """Rebuild an ended message and store the result if it changed.

    Returns `{"message_id", "status", "changed"}`; status is `open` for a
    message without an outcome (left alone).
    """
    keys = keyspace.message(message_id)
    stored = await read_outcome(redis, message_id, keyspace)
    if stored is None:
        return {"message_id": message_id, "status": "open", "changed": False}
    if stored.error is not None and stored.error["code"] in GIVEN_UP_REASONS:
        return {"message_id": message_id, "status": stored.status, "changed": False}
    stored_frames = await read_frames(redis, message_id, keyspace)
    start = stored_frames[0].data if stored_frames and stored_frames[0].kind is FrameKind.START else {}
    handler, frames = rebuild(
        keys, await redis.xrange(keys.events), settings,
        namespace=start.get("namespace") or None, node=start.get("node"),
    )  # fmt: skip
    rebuilt = handler.outcome
    changed = rebuilt is not None and (
        _plain(rebuilt.to_json()) != _plain(stored.to_json())
        or [_plain(f.body_json()) for f in frames] != [_plain(f.body_json()) for f in stored_frames]
    )
    if rebuilt is not None and changed:
        changed = await _rewrite(redis, keys, rebuilt, frames)
    outcome = rebuilt if changed and rebuilt is not None else stored
    log.info("reassembled", message_id=message_id, status=outcome.status, changed=changed)
    return {"message_id": message_id, "status": outcome.status, "changed": changed}


def _plain(raw: bytes) -> Any:
    return orjson.loads(raw)


async def _rewrite(redis: Redis, keys: MessageKeys, outcome: Outcome, frames: list[Frame]) -> bool:
    """Replace `O(M)` and `R(M)` at once; False if `R(M)` went away or changed meanwhile."""
    async with redis.pipeline(transaction=True) as pipe:
        try:
            await pipe.watch(keys.result, keys.out)
            ttl_ms = await pipe.pttl(keys.result)
            if ttl_ms == -2:
                return False  # expired, or cleared by `dead retry`
            pipe.multi()  # type: ignore[no-untyped-call]  # untyped in redis-py
            pipe.delete(keys.out)
            for frame in frames:
                pipe.xadd(keys.out, {b"f": frame.body_json()}, id=f"0-{frame.seq}")
            pipe.set(keys.result, outcome.to_json(), keepttl=True)
            if ttl_ms > 0:
                pipe.pexpire(keys.out, ttl_ms)
            await pipe.execute()
        except WatchError:
            return False
    return True
