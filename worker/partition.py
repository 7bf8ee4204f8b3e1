"""One partition's loop: claim, read the open messages' events, write frames, keep the leases.

Each round claims new dispatch entries when `D(k)` may hold some and the
worker has room (`XREADGROUP`), then makes one `XREAD` over the events streams
of every message this partition holds, plus `D(k)` itself as a wake-up: a new
announcement ends the block at once, so intake needs no second blocked
connection. What a round produced is written by fenced script calls on the
partition's node while the next round reads (one write in flight at a time).
Between rounds, at most every `upkeep_interval_s`, it renews its leases, takes
over abandoned entries, fails messages whose producer went silent, samples the
group's backlog, and trims `D(k)`.

On a Redis fault the worker drops what the partition holds in memory and
starts it again (`drop()`, then a new `Partition`): the first claim re-reads
this consumer's own pending entries, and since frames are a pure function of
the events and frames already in `O(M)` are refused, nothing is lost or doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import structlog
from redis.exceptions import RedisError

from streams.errors import InvalidMessageIdError
from streams.groups import group_backlog
from streams.ordering import parse_entry_id
from worker.handler import MessageHandler
from worker.publisher import Batch, Verdict
from worker.takeover import Claimed
from worker.wire import field_map

if TYPE_CHECKING:
    from worker.link import NodeLink
    from worker.runner import Worker

log = structlog.get_logger("lcstream.worker")

TRIM_INTERVAL_S = 10.0


class Partition:
    """Serves `D(k)` of one partition and the messages claimed from it."""

    def __init__(self, worker: Worker, k: int, link: NodeLink) -> None:
        self._worker = worker
        self._settings = worker.settings
        self._redis = link.redis
        self._wire = link.wire
        self._publisher = link.publisher
        self._leases = link.leases
        self._k = k
        self._dispatch = worker.keyspace.dispatch(k)
        self._dispatch_key = self._dispatch.encode()
        self._handlers: dict[bytes, MessageHandler] = {}  # by events key
        worker.held[k] = self._handlers  # the worker's open count is derived from these
        self._takeover_cursor = b"0-0"
        self._history_cursor = b"0-0"  # where re-reading our own pending entries goes on
        self._writing: asyncio.Task[None] | None = None
        self._upkeep_at = 0.0
        self._trim_at = time.monotonic() + TRIM_INTERVAL_S
        takeover_s = self._settings.takeover_after_ms / 1000
        self._upkeep_interval_s = min(1.0, takeover_s / 4, self._settings.idle_timeout_s / 4)

    def drop(self) -> None:
        """Forget held messages without acking: their pending entries bring them back."""
        self._handlers.clear()
        self._worker.capacity_freed()

    async def serve(self, until_idle: bool) -> None:
        """Run rounds until stopped (after the grace period) or, with `until_idle`, until idle."""
        try:
            await self._rounds(until_idle)
        finally:
            if self._writing is not None:  # a fault ended the rounds: the write's outcome is moot
                self._writing.cancel()
                with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                    await self._writing

    async def _rounds(self, until_idle: bool) -> None:
        worker, settings = self._worker, self._settings
        wake_id = await self._last_dispatch_id()
        worker.health.redis_ok(self._k)
        from_history = True  # first re-read this consumer's own pending entries
        claim_due = True  # D(k) may hold entries not tried yet (else only a wake-up says so)
        grace_ends_at: float | None = None
        while True:
            batch = Batch()
            want = read = 0
            read_history = False
            if worker.stopping:
                if grace_ends_at is None:
                    grace_ends_at = time.monotonic() + settings.grace_period_s
                if not self._handlers or time.monotonic() >= grace_ends_at:
                    await self._settle_write()
                    await self._release_held()
                    return
            else:
                want = worker.reserve_capacity()
                try:
                    if want and (claim_due or not self._handlers):
                        read = await self._claim(want, from_history, batch)
                finally:
                    worker.settle_capacity(want)
                read_history = from_history and want > 0
                from_history = from_history and read == want
                idle = until_idle and not read_history and want and not read and not self._handlers
                # Idle also means nothing abandoned (or handed back) waits to be taken over.
                if idle and not await self._take_over(batch):
                    await self._settle_write()
                    return
            if time.monotonic() >= self._upkeep_at:
                await self._upkeep(batch)
            # After reading our own pending entries, new ones may wait: claim them before blocking.
            more_waiting = read_history or (want > 0 and read == want)
            claim_due = more_waiting or want == 0  # while full, D(k) is not watched
            streams = {key: h.cursor for key, h in self._handlers.items() if h.outcome is None}
            if want and not more_waiting and not worker.stopping:
                streams[self._dispatch_key] = wake_id
            if not streams and not batch:
                if not more_waiting:  # no room: wait until a message ends
                    await worker.wait_for_capacity()
                continue
            if streams:
                block = None if (more_waiting or batch) else self._block_ms()
                if block is not None and self._writing is not None:
                    await self._settle_write()  # nothing waits to be read; what the write ended
                    continue  # changes what to read (and whether the worker is idle)
                per_stream = max(1, settings.read_count // len(streams))
                reply = await self._wire.xread(streams, count=per_stream, block_ms=block)
                worker.health.redis_ok(self._k)
                for key, entries in reply:
                    if key == self._dispatch_key:
                        wake_id, claim_due = entries[-1][0], True
                        continue
                    handler = self._handlers.get(key)
                    if handler is None:  # the write in flight found the claim lost
                        continue
                    handler.behind = len(entries) >= per_stream
                    frames = handler.accept([(entry_id, field_map(flat)) for entry_id, flat in entries])
                    worker.stats.events += len(entries)
                    if frames:
                        batch.frames.append((handler, frames))
            if batch:
                # One write in flight, overlapping the next read: a message's frames stay in order.
                await self._settle_write()
                self._writing = asyncio.create_task(self._publish(batch))

    async def _settle_write(self) -> None:
        """Wait for the write in flight (its faults surface here)."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    def _block_ms(self) -> int:
        """Block no longer than the next upkeep is due (and never past `block_ms`)."""
        until_upkeep_ms = int((self._upkeep_at - time.monotonic()) * 1000)
        return max(1, min(self._settings.block_ms, until_upkeep_ms))

    # -- writing -------------------------------------------------------------

    async def _publish(self, batch: Batch) -> None:
        worker, metrics = self._worker, self._worker.metrics
        started_at = time.monotonic()
        verdicts = await self._publisher.publish(batch)
        written_at = time.monotonic()
        metrics.write_seconds.observe(written_at - started_at)
        if batch.frames:  # one sample per write: its oldest newest-event, what a reader waited longest
            oldest = min(handler.last_event_at for handler, _ in batch.frames)
            metrics.delay_seconds.observe(max(0.0, written_at - oldest))
        for handler, frames in batch.frames:
            verdict, outcome = verdicts[handler.message_id], handler.outcome
            if verdict is not Verdict.LOST:
                worker.stats.frames += len(frames)
                if handler.dead is not None:
                    metrics.dead_letters.inc()
                if outcome is not None and verdict is Verdict.WRITTEN:
                    reason = "completed" if outcome.error is None else outcome.error["code"]
                    metrics.outcomes.labels(outcome.status, reason).inc()
            if verdict is Verdict.WRITTEN and outcome is None:
                continue
            if not self._forget(handler):
                continue  # the upkeep running beside this write found the claim lost first
            fields = {"message_id": handler.message_id, "entry_id": handler.delivery_id.decode()}
            if verdict is Verdict.LOST:
                worker.stats.lost_claims += 1
                log.warning("claim-lost", **fields)
            elif verdict is Verdict.ALREADY_COMMITTED:
                log.info("already-committed", **fields)
            elif outcome is not None and outcome.error is None:
                worker.stats.completed += 1
                log.info("completed", events=handler.event_count, **fields)
            elif outcome is not None and outcome.error is not None:
                worker.stats.failed += 1
                verb = "dead-lettered" if handler.dead else "failed"
                log.warning(verb, code=outcome.error["code"], error=outcome.error["message"], **fields)

    def _forget(self, handler: MessageHandler) -> bool:
        """Stop holding `handler`; False when it was no longer held (a write and an upkeep may both
        find the same claim lost)."""
        key = handler.keys.events.encode()
        if self._handlers.get(key) is not handler:
            return False
        del self._handlers[key]
        self._worker.capacity_freed()
        return True

    # -- claiming ------------------------------------------------------------

    async def _claim(self, want: int, from_history: bool, batch: Batch) -> int:
        """Claim up to `want` entries (new ones, or this consumer's own pending ones); return how
        many entries the read returned."""
        settings = self._settings
        start = self._history_cursor if from_history else b">"
        reply = await self._redis.xreadgroup(
            settings.group, settings.consumer, {self._dispatch: start}, count=want
        )
        entries = [(entry_id, fields) for _, stream in reply or () for entry_id, fields in stream]
        if from_history:
            if entries:
                self._history_cursor = entries[-1][0]
            # Our own pending entries: deleted ones come back without fields; ack them.
            gone = [entry_id for entry_id, fields in entries if not fields]
            if gone:
                await self._redis.xack(self._dispatch, settings.group, *gone)
            live = [(entry_id, fields) for entry_id, fields in entries if fields]
            counts = await self._leases.delivery_counts(self._dispatch, [e for e, _ in live])
        else:
            live, counts = entries, {}
        claimed = [Claimed(entry_id, fields, counts.get(entry_id, 1)) for entry_id, fields in live]
        await self._open_all(claimed, batch, taken_over=False)
        return len(entries)

    async def _open_all(self, claimed: list[Claimed], batch: Batch, *, taken_over: bool) -> int:
        """Open handlers for claimed entries; reject what names no usable message. Returns how many opened."""
        rejected: list[tuple[bytes, str, str, str]] = []
        duplicates: list[bytes] = []
        worn_out: list[MessageHandler] = []
        opened = 0
        for claim in claimed:
            handler = self._open(claim, rejected, taken_over=taken_over)
            if handler is None:
                continue
            key = handler.keys.events.encode()
            if (held := self._handlers.get(key)) is not None:
                if held.delivery_id != claim.entry_id:
                    duplicates.append(claim.entry_id)  # a second announcement of a message we hold
                continue  # else our own entry again (a takeover of a lease we were late to renew)
            self._handlers[key] = handler
            opened += 1
            if claim.deliveries > self._settings.max_deliveries:
                worn_out.append(handler)
            elif claim.deliveries == 1 and not taken_over:
                batch.started.append(handler)
        if rejected:
            await self._publisher.reject(self._dispatch, rejected)
            self._worker.metrics.dead_letters.inc(len(rejected))
        if duplicates:
            await self._redis.xack(self._dispatch, self._settings.group, *duplicates)
            log.info("duplicate-acked", partition=self._k, entries=len(duplicates))
        for handler in worn_out:
            await self._give_up_delivered_too_often(handler, batch)
        return opened

    def _open(
        self, claim: Claimed, rejected: list[tuple[bytes, str, str, str]], *, taken_over: bool
    ) -> MessageHandler | None:
        worker = self._worker
        entry_id = claim.entry_id.decode()
        raw_id = claim.fields.get(b"m", b"").decode(errors="replace")
        try:
            keys = worker.keyspace.message(raw_id)
        except InvalidMessageIdError as exc:
            # No key can be built for it, so no frame or outcome: dead-letter and ack.
            rejected.append((claim.entry_id, raw_id, "invalid_message_id", str(exc)))
            log.error("dead-lettered", entry_id=entry_id, reason="invalid_message_id", error=str(exc))
            return None
        if keys.dispatch != self._dispatch:
            error = f"message {raw_id} belongs to {keys.dispatch}, not {self._dispatch}"
            rejected.append((claim.entry_id, raw_id, "wrong_partition", error))
            log.error("dead-lettered", message_id=raw_id, entry_id=entry_id, reason="wrong_partition")
            return None
        verb = "taken-over" if taken_over else "claimed"
        log.info(verb, message_id=raw_id, entry_id=entry_id, deliveries=claim.deliveries)
        handler = MessageHandler.from_dispatch(
            keys, claim.entry_id, claim.fields,
            limits=worker.limits, max_events=self._settings.max_events_per_message,
        )  # fmt: skip
        handler.deliveries = claim.deliveries
        return handler

    async def _give_up_delivered_too_often(self, handler: MessageHandler, batch: Batch) -> None:
        """Dead-letter without replaying: the replay may be what keeps killing workers."""
        last = await self._redis.xrevrange(handler.keys.out, count=1)
        last_seq = parse_entry_id(last[0][0])[1] if last else 0
        error = (
            f"delivered {handler.deliveries} times (limit {self._settings.max_deliveries}); "
            "workers kept dying or losing it"
        )
        frame = handler.give_up("max_deliveries", error, after_seq=last_seq)
        batch.frames.append((handler, [frame]))

    # -- upkeep --------------------------------------------------------------

    async def _upkeep(self, batch: Batch) -> None:
        """Renew leases, take over abandoned entries, fail silent messages, trim `D(k)`."""
        now = time.monotonic()
        self._upkeep_at = now + self._upkeep_interval_s
        held = [h for h in self._handlers.values() if h.outcome is None]
        for entry_id in await self._leases.renew(
            self._dispatch, [(h.delivery_id, h.deliveries) for h in held]
        ):
            lost = next(h for h in held if h.delivery_id == entry_id)
            if not self._forget(lost):
                continue
            self._worker.stats.lost_claims += 1
            log.warning("claim-lost", message_id=lost.message_id, entry_id=entry_id.decode())
        idle_timeout_s = self._settings.idle_timeout_s
        for handler in list(self._handlers.values()):
            silent = not handler.behind and now - handler.last_event_at > idle_timeout_s
            if handler.outcome is None and silent:
                error = f"producer silent for more than {idle_timeout_s:g} s"
                batch.frames.append((handler, [handler.give_up("idle_timeout", error)]))
        if not self._worker.stopping:
            await self._take_over(batch)
        if (backlog := await group_backlog(self._redis, self._dispatch, self._settings.group)) is not None:
            self._worker.metrics.backlog.record(self._k, backlog)
        if now >= self._trim_at:
            self._trim_at = now + TRIM_INTERVAL_S
            await self._worker.trim_dispatch(self._dispatch)

    async def _take_over(self, batch: Batch) -> int:
        """Open entries idle past the takeover time, as capacity allows; return how many."""
        worker = self._worker
        want = worker.reserve_capacity()
        opened = 0
        try:
            if want:
                claimed, self._takeover_cursor = await self._leases.take_over(
                    self._dispatch, want, self._takeover_cursor
                )
                worker.stats.taken_over += len(claimed)
                opened = await self._open_all(claimed, batch, taken_over=True)
        finally:
            worker.settle_capacity(want)
        return opened

    async def _release_held(self) -> None:
        """Hand unfinished messages back unacked, so a peer takes them over at once."""
        if not self._handlers:
            return
        held = [(h.delivery_id, h.deliveries) for h in self._handlers.values()]
        await self._leases.release(self._dispatch, held)
        log.info("released", partition=self._k, messages=len(held))
        self.drop()

    async def _last_dispatch_id(self) -> bytes:
        last = await self._redis.xrevrange(self._dispatch, count=1)
        return bytes(last[0][0]) if last else b"0-0"
