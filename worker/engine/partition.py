"""One partition's rounds: claim, keep the leases, read the open messages' events, write what they made.

A round, in order:

1. intake: claim one step of new dispatch entries when `D(k)` may hold some, there
   is room and the worker keeps up with its delay target (`load.py`);
2. upkeep, at most every `upkeep_interval_s`: renew leases, fail silent or
   overlong messages, open waiting claims whose events appeared, take over
   abandoned entries, sample the backlog, trim `D(k)`, remove idle consumers;
3. read: one `XREAD` over the events streams of every open message, plus `D(k)`
   itself as a wake-up (a new announcement ends the block at once);
4. settle the previous write: apply its verdicts to the handlers;
5. take a frozen `Batch` of what the handlers made and start writing it.

One write is in flight at a time and overlaps the next round's steps 1-3. It
reads only its batch and returns verdicts; only the round touches handlers, so
nothing the write decides depends on what the next round did meanwhile.

On a Redis fault the worker drops what the partition holds in memory and
starts it again (`drop()`, then a new `Partition`): the first claim re-reads
this consumer's own pending entries, and since frames are a pure function of
the events and frames already in `O(M)` are refused, nothing is lost or doubled.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog
from redis.exceptions import ResponseError

from lcstream.streams.groups import group_backlog, trim_dispatch
from lcstream.worker.engine.handler import MessageHandler
from lcstream.worker.engine.held import Held
from lcstream.worker.engine.intake import Intake
from lcstream.worker.engine.raw_commands import field_map
from lcstream.worker.engine.state import WorkerState
from lcstream.worker.engine.writer import Writer

if TYPE_CHECKING:
    from lcstream.worker.engine.link import NodeLink
log = structlog.get_logger("lcstream.worker")

TRIM_INTERVAL_S = 10.0
SWEEP_INTERVAL_S = 60.0  # at most; half the idle bound when that is shorter


class Partition:
    """Serves `D(k)` of one partition and the messages claimed from it."""

    def __init__(self, worker: WorkerState, k: int, link: NodeLink) -> None:
        self._worker = worker
        self._settings = settings = worker.settings
        self._k = k
        self._redis = link.redis
        self._wire = link.wire
        self._leases = link.leases
        self._consumers = link.consumers
        self._dispatch = worker.keyspace.dispatch(k)
        self._dispatch_key = self._dispatch.encode()
        self.held = Held(worker.capacity_freed)
        worker.held[k] = self.held  # the worker's open count is derived from these
        self._intake = Intake(worker, k, link, self.held)
        self._wake_id = b"0-0"  # the newest dispatch entry seen: an XREAD from it wakes on the next one
        self._claim_due = True  # D(k) may hold entries not tried yet (else only a wake-up says so)
        self._more_waiting = False  # the last claim filled its room: claim again before blocking
        self._room = 0  # capacity reserved for this round's claim
        self._writer = Writer(worker, k, link.publisher, self.held)
        self._grace_ends_at: float | None = None
        self._until_idle = False
        self._upkeep_at = 0.0
        self._trim_at = time.monotonic() + TRIM_INTERVAL_S
        self._sweep_interval_s = min(SWEEP_INTERVAL_S, settings.remove_idle_consumers_after_s / 2)
        self._sweep_at = time.monotonic() + self._sweep_interval_s
        takeover_s = settings.takeover_after_ms / 1000
        self._upkeep_interval_s = min(1.0, takeover_s / 4, settings.idle_timeout_s / 4)
        self.healthy = False  # set once a round went through: the caller's back-off starts over

    def drop(self) -> None:
        """Forget what is held without acking (the pending entries bring it back), remembering
        delivery counts so that re-reading them does not count as a delivery."""
        self._worker.remember_deliveries(self._k, self.held.leases())
        self.held.clear()

    async def serve(self, until_idle: bool) -> None:
        """Run rounds until stopped (after the grace period) or, with `until_idle`, until idle."""
        self._until_idle = until_idle
        try:
            last = await self._redis.xrevrange(self._dispatch, count=1)
            self._wake_id = bytes(last[0][0]) if last else b"0-0"
            self._worker.health.redis_ok(self._k)
            while await self.round():
                pass
        finally:
            await self._writer.cancel()

    async def round(self) -> bool:
        """One round; False once the partition is done (stopped and drained, or idle in burst mode)."""
        worker = self._worker
        if worker.stopping and self._drained():
            await self._writer.settle()
            await self._release_held()
            return False
        if self._writer.retry_at is not None:
            await self._wait_to_retry()
        else:
            if worker.stopping:
                self._room, self._more_waiting = 0, False
            else:
                await self._claim()
            if time.monotonic() >= self._upkeep_at:
                await self._upkeep()
            if self._until_idle and await self._idle():
                return False
            await self._read()
        await self._writer.settle()
        self._writer.start()
        self.healthy = True
        return True

    def _drained(self) -> bool:
        if self._grace_ends_at is None:
            self._grace_ends_at = time.monotonic() + self._settings.grace_period_s
        return not self.held.open or time.monotonic() >= self._grace_ends_at

    # -- intake ---------------------------------------------------------------

    async def _claim(self) -> None:
        """Claim one step of new entries (or of this consumer's own pending ones) when there is room:
        workers awake at once take turns, round by round, so a burst is shared."""
        worker, intake = self._worker, self._intake
        self._room = worker.reserve_capacity(new=not intake.from_history) if intake.room_to_wait() else 0
        try:
            read = 0
            if self._room and (self._claim_due or not self.held):
                from_history = intake.from_history
                read = await intake.claim(self._room)
                self._more_waiting = from_history or read == self._room
            else:
                self._more_waiting = False
        finally:
            worker.settle_capacity(self._room)
        worker.health.redis_ok(self._k)
        self._claim_due = self._more_waiting or not self._room  # while full, D(k) is not watched

    async def _idle(self) -> bool:
        """Burst mode: nothing held, nothing to claim, nothing abandoned to take over."""
        if self.held or self._more_waiting or not self._room:
            return False
        await self._writer.settle()
        if self.held:
            return False
        return not await self._take_over()

    async def _take_over(self) -> int:
        worker = self._worker
        want = worker.reserve_capacity()
        try:
            return await self._intake.take_over(want) if want else 0
        finally:
            worker.settle_capacity(want)

    # -- reading --------------------------------------------------------------

    async def _read(self) -> None:
        held = self.held
        readable = [handler for handler in held.open.values() if handler.outcome is None]
        if not held.open:
            self._worker.load.record(self._k, 0.0)  # holding nothing, it can't be late
        streams = {handler.events_key: handler.cursor for handler in readable}
        if self._room and not self._more_waiting and not self._worker.stopping:
            streams[self._dispatch_key] = self._wake_id
        # More to claim, to write, or events known to wait: read without blocking, beside the write.
        busy = self._more_waiting or bool(held.dirty) or any(handler.behind for handler in readable)
        if not busy and self._writer.in_flight:
            await self._writer.settle()  # what the write ends changes what to read (and whether idle)
            return
        if not streams:
            if not busy:
                await self._worker.wait_for_capacity()
            return
        share = max(1, self._read_budget() // len(streams))
        for handler in readable:
            handler.behind = False  # until this read returns a full share for it
        try:
            reply = await self._wire.xread(streams, count=share, block_ms=None if busy else self._block_ms())
        except ResponseError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            await self._fail_wrong_typed(readable, exc)
            return
        self._worker.health.redis_ok(self._k)
        if not reply and not busy:
            self._worker.load.record(self._k, 0.0)  # it waited and nothing came: nothing is late
        events = 0
        for key, entries in reply:
            if key == self._dispatch_key:
                self._wake_id, self._claim_due = entries[-1][0], True
            elif (reader := held.open.get(key)) is not None:
                reader.behind = len(entries) >= share
                events += len(entries)
                if reader.accept([(entry_id, field_map(flat)) for entry_id, flat in entries]):
                    held.mark(reader)
                if not reader.behind and reader.caught_up_at is None:
                    # Its backlog is read: from its next event on, it can be late.
                    reader.caught_up_at = time.monotonic()
        self._worker.stats.events += events

    def _read_budget(self) -> int:
        """`read_count`, cut in proportion while the worker is over its delay target: the backlogs of
        messages it claimed late must not make its live messages wait for one large round."""
        fraction = self._worker.load.fraction()
        read_count = self._settings.read_count
        return read_count if fraction <= 1.0 else max(1, int(read_count / fraction))

    async def _fail_wrong_typed(self, readable: list[MessageHandler], error: ResponseError) -> None:
        """An `XREAD` refused for a key of another type: fail the messages whose `E(M)` it is."""
        kinds = await self._intake.key_types([handler.keys.events for handler in readable])
        culprits = [
            (h, kind) for h, kind in zip(readable, kinds, strict=True) if kind not in ("stream", "none")
        ]
        if not culprits:
            raise error  # D(k) itself: a fault of the partition, not of a message
        for handler, kind in culprits:
            handler.give_up_wrong_type(handler.keys.events, kind)
            self.held.mark(handler)

    def _block_ms(self) -> int:
        """Block no longer than the next upkeep is due (and never past `block_ms`)."""
        until_upkeep_ms = int((self._upkeep_at - time.monotonic()) * 1000)
        return max(1, min(self._settings.block_ms, until_upkeep_ms))

    async def _wait_to_retry(self) -> None:
        """A refused write waits for its back-off (leases kept meanwhile), then is written again."""
        if time.monotonic() >= self._upkeep_at:
            await self._upkeep()
        await self._writer.settle()
        if (retry_at := self._writer.retry_at) is not None:
            await self._worker.sleep_unless_stopped(min(retry_at, self._upkeep_at) - time.monotonic())

    # -- upkeep ---------------------------------------------------------------

    async def _upkeep(self) -> None:
        """Renew leases, fail silent or overlong messages, open waiting claims, take over abandoned
        entries, sample the backlog, trim `D(k)`, remove consumers gone idle."""
        now = time.monotonic()
        self._upkeep_at = now + self._upkeep_interval_s
        held, settings = self.held, self._settings
        lost = await self._leases.renew(self._dispatch, held.leases(renewing=True))
        for message_id in held.forget_entries(set(lost)):
            self._worker.stats.lost_claims += 1
            log.warning("claim-lost", message_id=message_id)
        idle_timeout_s, max_open_s = settings.idle_timeout_s, settings.max_open_s
        for handler in held.open.values():
            if handler.outcome is not None:
                continue
            if now - handler.announced_at > max_open_s:
                handler.give_up("max_open_time", f"open for more than {max_open_s:g} s")
            elif not handler.behind and now - handler.last_event_at > idle_timeout_s:
                handler.give_up("idle_timeout", f"producer silent for more than {idle_timeout_s:g} s")
            else:
                continue
            held.mark(handler)
        await self._intake.check_waiting()
        if not self._worker.stopping:
            await self._take_over()
        if (backlog := await group_backlog(self._redis, self._dispatch, settings.group)) is not None:
            self._worker.metrics.backlog.record(self._k, backlog)
        if now >= self._trim_at:
            self._trim_at = now + TRIM_INTERVAL_S
            await trim_dispatch(self._redis, self._dispatch)
        if now >= self._sweep_at:
            self._sweep_at = now + self._sweep_interval_s
            if removed := await self._consumers.sweep(self._dispatch):
                log.info("consumers-removed", partition=self._k, consumers=removed)

    async def _release_held(self) -> None:
        """Hand unfinished messages back unacked, so a peer takes them over at once; owning nothing,
        leave the group."""
        leases = self.held.leases()
        if leases:
            await self._leases.release(self._dispatch, leases)
            log.info("released", partition=self._k, messages=len(leases))
        elif await self._consumers.leave(self._dispatch):
            log.info("consumer-removed", partition=self._k)
        self.held.clear()
