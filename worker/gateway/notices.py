"""Recent and active messages, from the lifecycle notices on `P:messages`.

Pub/sub keeps no history: the list holds what this gateway heard since it
started (and while it was connected), newest first, at most `capacity` messages.
A message still `started` is looked up again after a reconnect and every
`SWEEP_INTERVAL_S`: its outcome, if it ended while no notice was heard; gone
from the list, if nothing of it is left (Redis lost it, or it expired).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from lcstream.streams.backoff import TRANSIENT_ERRORS, Backoff, cancel_requested, is_transient
from lcstream.streams.cluster import RedisClient, node_for
from lcstream.streams.errors import InvalidMessageIdError
from lcstream.streams.keys import Keyspace, validate_message_id

log = structlog.get_logger("lcstream.gateway")

STATUSES = frozenset({"started", "completed", "failed"})
SWEEP_INTERVAL_S = 30.0


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class NoticeBoard:
    """The last `capacity` messages heard of on the notices channel, and their latest status."""

    def __init__(self, redis: RedisClient, keyspace: Keyspace, capacity: int) -> None:
        self._redis = redis
        self._keyspace = keyspace
        self._channel = keyspace.notices
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
        while not cancel_requested():
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
            sweep_at = 0.0  # at once: a reconnect may follow a restart that lost messages
            while not cancel_requested():
                message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
                if message is not None and message["type"] == "subscribe":
                    self.listening_since = self.listening_since or _now_iso()
                elif message is not None and message["type"] == "message":
                    self.record(message["data"])
                if time.monotonic() >= sweep_at:
                    await self.sweep()
                    sweep_at = time.monotonic() + SWEEP_INTERVAL_S
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def sweep(self) -> None:
        """Look up every message still `started`: take its outcome, or drop it when nothing is left."""
        for message_id, entry in list(self._messages.items()):
            if entry["status"] != "started":
                continue
            keys = self._keyspace.message(message_id)
            outcome = await self._redis.get(keys.result)
            if outcome is not None:
                with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
                    entry["status"] = orjson.loads(outcome)["status"]
            elif not await self._redis.exists(keys.events, keys.out):
                self._messages.pop(message_id, None)
