"""Bringing dispatch entries into a partition: new ones, this consumer's own pending ones, abandoned ones.

Each claimed entry is read (`read_announcement`) and then, by what `E(M)`
is: a stream opens the message; no key yet makes it a waiting claim (no open
slot, no read; checked at upkeep, failed `idle_timeout` if nothing comes); a
key of another type fails it `wrong_type`. Entries that name no usable
message are dead-lettered and acked; a second announcement of a message
already held is acked; a message delivered too often is failed without
replaying it (the replay may be what kills the workers).

Re-reading this consumer's own pending entries (`XREADGROUP` with an id)
raises their delivery count in Redis. After a fault the worker remembers
what each count was and the next renewal sets it back, so a connection blip
does not count as a delivery.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog
from redis.exceptions import ResponseError

from lcstream.streams.frames import Outcome
from lcstream.streams.ordering import parse_entry_id
from lcstream.worker.engine.announcement import Announcement, Rejection, read_announcement
from lcstream.worker.engine.batch import lifecycle_notice
from lcstream.worker.engine.handler import MessageHandler, announced_at
from lcstream.worker.engine.held import Held, WaitingClaim
from lcstream.worker.engine.leases import Claimed
from lcstream.worker.engine.state import WorkerState

if TYPE_CHECKING:
    from lcstream.worker.engine.link import NodeLink
log = structlog.get_logger("lcstream.worker")

# Waiting claims one worker keeps at most, per open-message slot: they cost a few hundred bytes each.
WAITING_PER_SLOT = 10


class Intake:
    """Claims for one partition and opens what it claimed into `held`."""

    def __init__(self, worker: WorkerState, k: int, link: NodeLink, held: Held) -> None:
        self._worker = worker
        self._settings = worker.settings
        self._k = k
        self._redis = link.redis
        self._publisher = link.publisher
        self._leases = link.leases
        self._held = held
        self._dispatch = worker.keyspace.dispatch(k)
        self.from_history = True  # first re-read this consumer's own pending entries
        self._history_cursor = b"0-0"
        self._takeover_cursor = b"0-0"
        self._max_waiting = WAITING_PER_SLOT * self._settings.max_open_messages

    def room_to_wait(self) -> bool:
        """Whether another waiting claim may be taken."""
        return len(self._held.waiting) < self._max_waiting

    async def claim(self, want: int) -> int:
        """Claim up to `want` entries, own pending ones first; return how many the read returned."""
        settings = self._settings
        start = self._history_cursor if self.from_history else b">"
        reply = await self._redis.xreadgroup(
            settings.group, settings.consumer, {self._dispatch: start}, count=want
        )
        entries = [(entry_id, fields) for _, stream in reply or () for entry_id, fields in stream]
        if not self.from_history:
            await self._open_all([Claimed(entry_id, fields, 1) for entry_id, fields in entries], fresh=True)
            return len(entries)
        if entries:
            self._history_cursor = entries[-1][0]
        gone = [entry_id for entry_id, fields in entries if not fields]  # deleted from D(k): ack them
        if gone:
            await self._redis.xack(self._dispatch, settings.group, *gone)
        live = [(entry_id, fields) for entry_id, fields in entries if fields]
        remembered = self._worker.remembered_deliveries
        unknown = [entry_id for entry_id, _ in live if (self._k, entry_id) not in remembered]
        counts = await self._leases.delivery_counts(self._dispatch, unknown)
        claimed = [
            Claimed(entry_id, fields, remembered.pop((self._k, entry_id), 0) or counts.get(entry_id, 1))
            for entry_id, fields in live
        ]
        await self._open_all(claimed, fresh=False)
        if len(entries) < want:
            self.from_history = False
            self._worker.forget_remembered(self._k)
        return len(entries)

    async def take_over(self, want: int) -> int:
        """Open up to `want` entries idle past the takeover time; return how many."""
        claimed, self._takeover_cursor = await self._leases.take_over(
            self._dispatch, want, self._takeover_cursor
        )
        self._worker.stats.taken_over += len(claimed)
        return await self._open_all(claimed, fresh=False, taken_over=True)

    async def _open_all(self, claimed: list[Claimed], *, fresh: bool, taken_over: bool = False) -> int:
        """Open, wait for or reject each claimed entry; return how many were opened or wait."""
        rejected: list[tuple[bytes, str, str, str]] = []
        duplicates: list[bytes] = []
        found: list[tuple[Claimed, Announcement]] = []
        for claim in claimed:
            announcement = read_announcement(claim.fields, self._worker.keyspace, self._dispatch)
            if isinstance(announcement, Rejection):
                rejected.append(
                    (claim.entry_id, announcement.raw_id, announcement.reason, announcement.error)
                )
                log.error(
                    "dead-lettered", message_id=announcement.raw_id, entry_id=claim.entry_id.decode(),
                    reason=announcement.reason, error=announcement.error,
                )  # fmt: skip
                continue
            held_as = self._held.delivery_of(announcement.keys.events.encode())
            if held_as is not None:
                if held_as != claim.entry_id:
                    duplicates.append(claim.entry_id)  # a second announcement of a message we hold
                continue  # else our own entry again (a takeover of a lease we were late to renew)
            found.append((claim, announcement))
        if rejected:
            await self._publisher.reject(self._dispatch, rejected)
            self._worker.metrics.dead_letters.inc(len(rejected))
        opened = 0
        for (claim, announcement), (kind, committed) in zip(found, await self._states(found), strict=True):
            message_id, entry_id = announcement.keys.message_id, claim.entry_id.decode()
            if committed:  # announced again after its outcome was written: nothing to redo
                duplicates.append(claim.entry_id)
                log.info("already-committed", message_id=message_id, entry_id=entry_id)
                continue
            verb = "taken-over" if taken_over else "claimed"
            log.info(verb, message_id=message_id, entry_id=entry_id, deliveries=claim.deliveries)
            if fresh and claim.deliveries == 1:
                self._held.started.append(lifecycle_notice(message_id, "started", announcement.run_id))
            await self._open(claim, announcement, kind)
            opened += 1
        if duplicates:
            await self._redis.xack(self._dispatch, self._settings.group, *duplicates)
            log.info("duplicate-acked", partition=self._k, entries=len(duplicates))
        return opened

    async def _states(self, found: list[tuple[Claimed, Announcement]]) -> list[tuple[str, bool]]:
        """Per announced message, in one round trip: the type of its `E(M)`, and whether `R(M)` holds
        an outcome already (a key of another type there is left for the commit to find)."""
        pipe = self._redis.pipeline(transaction=False)
        for _, announcement in found:
            pipe.type(announcement.keys.events)
            pipe.get(announcement.keys.result)
        replies = await pipe.execute(raise_on_error=False)
        kinds, results = replies[::2], replies[1::2]
        return [(_text(kind), _holds_outcome(result)) for kind, result in zip(kinds, results, strict=True)]

    async def _open(self, claim: Claimed, announcement: Announcement, kind: str) -> None:
        if (
            kind == "none"
            and announcement.problem is None
            and claim.deliveries <= self._settings.max_deliveries
        ):
            waiting = WaitingClaim(claim, announcement, announced_at(claim.entry_id))
            self._held.waiting[announcement.keys.events.encode()] = waiting
            return
        handler = self.handler(claim, announcement)
        if handler.outcome is None and claim.deliveries > self._settings.max_deliveries:
            await self._give_up_delivered_too_often(handler)
        elif handler.outcome is None and kind not in ("stream", "none"):
            handler.give_up_wrong_type(handler.keys.events, kind)
        self._held.add(handler)

    def handler(self, claim: Claimed, announcement: Announcement) -> MessageHandler:
        """A handler for a claimed message."""
        worker = self._worker
        return MessageHandler(
            announcement, claim.entry_id, deliveries=claim.deliveries,
            limits=worker.limits, max_events=self._settings.max_events_per_message,
        )  # fmt: skip

    async def _give_up_delivered_too_often(self, handler: MessageHandler) -> None:
        """Fail after the frames already in `O(M)`, without replaying the events."""
        error = (
            f"delivered {handler.deliveries} times (limit {self._settings.max_deliveries}); "
            "workers kept dying or losing it"
        )
        try:
            last = await self._redis.xrevrange(handler.keys.out, count=1)
        except ResponseError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            handler.give_up_wrong_type(handler.keys.out, "value of another type")
            return
        handler.give_up("max_deliveries", error, after_seq=parse_entry_id(last[0][0])[1] if last else 0)

    async def check_waiting(self) -> None:
        """Open waiting claims whose `E(M)` appeared (room allowing); fail those silent too long."""
        if not self._held.waiting:
            return
        waiting = list(self._held.waiting.items())
        kinds = await self.key_types([w.announcement.keys.events for _, w in waiting])
        idle_timeout_s, now = self._settings.idle_timeout_s, time.monotonic()
        for (key, claim), kind in zip(waiting, kinds, strict=True):
            if kind == "none" and now - claim.announced_at <= idle_timeout_s:
                continue
            if kind == "stream" and not self._worker.room():
                continue
            del self._held.waiting[key]
            handler = self.handler(claim.claim, claim.announcement)
            if kind == "none":
                error = f"no event within {idle_timeout_s:g} s of the announcement"
                handler.give_up("idle_timeout", error)
            elif kind != "stream":
                handler.give_up_wrong_type(handler.keys.events, kind)
            self._held.add(handler)

    async def key_types(self, keys: list[str]) -> list[str]:
        """`TYPE` of each key, in one round trip."""
        if not keys:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        return [_text(kind) for kind in await pipe.execute()]


def _text(reply: bytes | str) -> str:
    return reply.decode() if isinstance(reply, bytes) else reply


def _holds_outcome(reply: object) -> bool:
    """Whether a `GET R(M)` reply is a stored outcome (not absent, an error, or a squatter's string)."""
    if not isinstance(reply, bytes | str):
        return False
    try:
        return Outcome.from_json(reply).status in ("completed", "failed")
    except (ValueError, KeyError, TypeError):
        return False
