"""Recent and active messages and runs, from the notices on `P:messages` and `P:runs` (one connection).

Pub/sub keeps no history: each list holds what this gateway heard since it
started (and while it was connected), newest first, at most `capacity` items.
An item still `started` is looked up again after a reconnect and every
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
from lcstream.streams.run_index import RUN_ENDINGS, run_status

log = structlog.get_logger("lcstream.gateway")

MESSAGE_STATUSES = frozenset({"started", "completed", "failed"})
RUN_STATUSES = frozenset({"started"}) | RUN_ENDINGS
SWEEP_INTERVAL_S = 30.0


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Recent:
    """The last `capacity` items of one kind (`message_id` or `run_id`) and their latest status."""

    def __init__(self, id_field: str, statuses: frozenset[str], capacity: int) -> None:
        self.id_field = id_field
        self._statuses = statuses
        self._capacity = capacity
        self.items: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def record(self, payload: bytes) -> None:
        """Take in one notice; malformed ones are logged and dropped."""
        try:
            notice = orjson.loads(payload)
            item_id = validate_message_id(notice[self.id_field])
            status = notice["status"]
            if status not in self._statuses:
                raise ValueError(f"unknown status {status!r}")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, InvalidMessageIdError) as exc:
            log.warning("notice-dropped", error=str(exc), payload=payload[:200].decode(errors="replace"))
            return
        entry = {self.id_field: item_id, "status": status, "updated_at": _now_iso()}
        if self.id_field == "message_id" and isinstance(run_id := notice.get("run_id"), str):
            entry["run_id"] = run_id  # v1.1: a message of a run
        self.items[item_id] = entry
        self.items.move_to_end(item_id)
        while len(self.items) > self._capacity:
            self.items.popitem(last=False)

    def newest_first(self) -> list[dict[str, Any]]:
        return list(reversed(self.items.values()))

    def started(self) -> list[tuple[str, dict[str, Any]]]:
        return [(item_id, entry) for item_id, entry in self.items.items() if entry["status"] == "started"]


class NoticeBoard:
    """The messages and runs heard of on the notices channels, and their latest status."""

    def __init__(self, redis: RedisClient, keyspace: Keyspace, capacity: int) -> None:
        self._redis = redis
        self._keyspace = keyspace
        self._messages = _Recent("message_id", MESSAGE_STATUSES, capacity)
        self._runs = _Recent("run_id", RUN_STATUSES, capacity)
        self._boards = {keyspace.notices.encode(): self._messages, keyspace.run_notices.encode(): self._runs}
        self.listening_since: str | None = None

    def record(self, payload: bytes) -> None:
        """Take in one message notice."""
        self._messages.record(payload)

    def recent(self) -> list[dict[str, Any]]:
        """Messages newest first: `message_id`, `status` (started, completed, failed), `updated_at`, and
        `run_id` for a message of a run."""
        return self._messages.newest_first()

    def recent_runs(self) -> list[dict[str, Any]]:
        """Runs newest first: `run_id`, `status` (started, completed, failed, interrupted), `updated_at`."""
        return self._runs.newest_first()

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
        channels = list(self._boards)
        pubsub = (await node_for(self._redis, channels[0])).pubsub()  # any node hears PUBLISH
        try:
            await pubsub.subscribe(*channels)
            sweep_at = 0.0  # at once: a reconnect may follow a restart that lost messages
            while not cancel_requested():
                message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
                if message is not None and message["type"] == "subscribe":
                    self.listening_since = self.listening_since or _now_iso()
                elif message is not None and message["type"] == "message":
                    self._boards[message["channel"]].record(message["data"])
                if time.monotonic() >= sweep_at:
                    await self.sweep()
                    sweep_at = time.monotonic() + SWEEP_INTERVAL_S
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def sweep(self) -> None:
        """Look up every message and run still `started`: take its ending, or drop it when nothing is left."""
        for message_id, entry in self._messages.started():
            keys = self._keyspace.message(message_id)
            outcome = await self._redis.get(keys.result)
            if outcome is not None:
                with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
                    entry["status"] = orjson.loads(outcome)["status"]
            elif not await self._redis.exists(keys.events, keys.out):
                self._messages.items.pop(message_id, None)
        for run_id, entry in self._runs.started():
            status = await run_status(self._redis, self._keyspace, run_id)
            if status is None:
                self._runs.items.pop(run_id, None)
            elif status != "running":
                entry["status"] = status
