"""Recent and active messages, from the lifecycle notices on `P:messages`.

Pub/sub keeps no history: the list holds what this gateway heard since it
started (and while it was connected), newest first, at most `capacity` messages.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from lcstream.streams.backoff import TRANSIENT_ERRORS, Backoff, is_transient
from lcstream.streams.cluster import RedisClient, node_for
from lcstream.streams.errors import InvalidMessageIdError
from lcstream.streams.keys import validate_message_id

log = structlog.get_logger("lcstream.gateway")

STATUSES = frozenset({"started", "completed", "failed"})


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class NoticeBoard:
    """The last `capacity` messages heard of on the notices channel, and their latest status."""

    def __init__(self, redis: RedisClient, channel: str, capacity: int) -> None:
        self._redis = redis
        self._channel = channel
        self._capacity = capacity
        self._messages: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.listening_since: str | None = None

    def record(self, payload: bytes) -> None:
        """Take in one notice; malformed ones are logged and dropped."""
        try:
            notice = orjson.loads(payload)
            message_id = validate_message_id(notice["message_id"])
            status = notice["status"]
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r}")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, InvalidMessageIdError) as exc:
            log.warning("notice-dropped", error=str(exc), payload=payload[:200].decode(errors="replace"))
            return
        self._messages[message_id] = {"message_id": message_id, "status": status, "updated_at": _now_iso()}
        self._messages.move_to_end(message_id)
        while len(self._messages) > self._capacity:
            self._messages.popitem(last=False)

    def recent(self) -> list[dict[str, Any]]:
        """Messages newest first: `message_id`, `status` (started, completed, failed), `updated_at`."""
        return list(reversed(self._messages.values()))

    async def run(self) -> None:
        """Listen until cancelled; reconnect with back-off when Redis goes away."""
        delays = Backoff(first_s=0.1, max_s=5.0).delays()
        while True:
            try:
                await self._listen()
            except TRANSIENT_ERRORS as exc:
                if not is_transient(exc):
                    raise
                delay_s = next(delays)
                log.warning("notices-retrying", error=str(exc), retry_in_s=round(delay_s, 3))
                await asyncio.sleep(delay_s)

    async def _listen(self) -> None:
        pubsub = (await node_for(self._redis, self._channel)).pubsub()  # any node hears PUBLISH
        try:
            await pubsub.subscribe(self._channel)
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    self.listening_since = self.listening_since or _now_iso()
                elif message["type"] == "message":
                    self.record(message["data"])
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
