"""The `Worker`: consumer-group intake, multiplexed event reads, frames out, commits, stop.

One loop per partition `k`. Each round it claims new dispatch entries while
it has room (`XREADGROUP`, backpressure at `max_open_messages`), then makes
one `XREAD` over the events streams of all its open messages, plus `D(k)`
itself as a wake-up: a new announcement ends the block at once, so intake
needs no second blocked connection. Everything a round produced is written
in one pipeline (`FramePublisher`).

On a Redis fault a partition drops what it holds in memory and rebuilds it
from its own pending entries: frames are a pure function of the events, and
frames already in `O(M)` are refused, so nothing is lost or doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.typing import KeyT, StreamIdT

from config import Settings
from streams.backoff import TRANSIENT_ERRORS, Backoff
from streams.errors import InvalidMessageIdError
from streams.events import EventLimits
from streams.keys import Keyspace
from worker.handler import MessageHandler
from worker.publisher import Batch, FramePublisher, Verdict

log = structlog.get_logger("lcstream.worker")


@dataclass(slots=True)
class WorkerStats:
    """Counters since start."""

    events: int = 0
    frames: int = 0
    completed: int = 0
    failed: int = 0
    lost_claims: int = 0


class Worker:
    """Serves the dispatch streams of every partition until stopped (or idle, in burst mode)."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        self._keyspace = Keyspace(settings.prefix, settings.partitions)
        self._limits = EventLimits(settings.max_event_bytes, settings.max_json_depth)
        self._publisher = FramePublisher(
            redis, self._keyspace,
            group=settings.group, consumer=settings.consumer, retention_s=settings.retention_s,
        )  # fmt: skip
        self._open_count = 0
        self._reserved = 0
        self._capacity_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self.stats = WorkerStats()

    @property
    def open_messages(self) -> int:
        """Messages this worker holds now."""
        return self._open_count

    def stop(self) -> None:
        """Stop taking work; open messages get the grace period to finish. Safe from a signal handler."""
        self._stopping.set()

    async def run(self, *, until_idle: bool = False) -> WorkerStats:
        """Serve until `stop()`, or with `until_idle` until no work is open or waiting."""
        await self._ensure_groups()
        log.info(
            "started", consumer=self._settings.consumer, group=self._settings.group,
            partitions=self._settings.partitions, until_idle=until_idle,
        )  # fmt: skip
        started_at = time.monotonic()
        async with asyncio.TaskGroup() as tasks:
            for k in range(self._keyspace.partitions):
                tasks.create_task(self._run_partition(k, until_idle), name=f"partition-{k}")
        elapsed_s = time.monotonic() - started_at
        log.info(
            "stopped", elapsed_s=round(elapsed_s, 3),
            events_per_s=round(self.stats.events / elapsed_s) if elapsed_s else 0,
            **{f: getattr(self.stats, f) for f in WorkerStats.__slots__},
        )  # fmt: skip
        return self.stats

    async def _ensure_groups(self) -> None:
        for dispatch in self._keyspace.all_dispatch():
            try:
                await self._redis.xgroup_create(dispatch, self._settings.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _run_partition(self, k: int, until_idle: bool) -> None:
        delays = Backoff().delays()
        while True:
            partition = _Partition(self, k)
            try:
                await partition.serve(until_idle)
                return
            except TRANSIENT_ERRORS as exc:
                delay_s = next(delays)
                log.warning("redis-unavailable", partition=k, error=str(exc), retry_in_s=round(delay_s, 3))
            finally:
                partition.drop()
            if self._stopping.is_set():
                return
            await asyncio.sleep(delay_s)

    # -- capacity, shared by the partitions ---------------------------------

    def _reserve(self) -> int:
        room = self._settings.max_open_messages - self._open_count - self._reserved
        want = max(0, min(self._settings.read_count, room))
        self._reserved += want
        return want

    def _settle(self, reserved: int, opened: int) -> None:
        self._reserved -= reserved
        self._open_count += opened

    def _release(self, count: int) -> None:
        if count:
            self._open_count -= count
            self._capacity_freed.set()


class _Partition:
    """One partition's loop and the messages it holds."""

    def __init__(self, worker: Worker, k: int) -> None:
        self._worker = worker
        self._settings = worker._settings
        self._redis = worker._redis
        self._dispatch = worker._keyspace.dispatch(k)
        self._dispatch_key = self._dispatch.encode()
        self._handlers: dict[bytes, MessageHandler] = {}  # by events key
        self._k = k

    def drop(self) -> None:
        """Forget held messages without acking: their pending entries bring them back."""
        self._worker._release(len(self._handlers))
        self._handlers.clear()

    async def serve(self, until_idle: bool) -> None:
        worker, settings = self._worker, self._settings
        wake_id = await self._last_dispatch_id()
        from_history = True  # first re-read this consumer's own pending entries
        grace_ends_at: float | None = None
        while True:
            batch = Batch()
            claimed = want = 0
            if worker._stopping.is_set():
                if grace_ends_at is None:
                    grace_ends_at = time.monotonic() + settings.grace_period_s
                if not self._handlers or time.monotonic() >= grace_ends_at:
                    await self._release_held()
                    return
            else:
                want = worker._reserve()
                claimed = 0
                try:
                    if want:
                        claimed = await self._claim(want, from_history, batch)
                finally:
                    worker._settle(want, claimed)
                read_history, from_history = from_history, from_history and claimed == want
                if until_idle and not read_history and want and not claimed and not self._handlers:
                    return
            more_waiting = from_history or (want > 0 and claimed == want)
            streams: dict[KeyT, StreamIdT] = {k: h.cursor for k, h in self._handlers.items()}
            if want and not more_waiting and not worker._stopping.is_set():
                streams[self._dispatch] = wake_id
            if not streams:
                await self._await_capacity()
                continue
            block = None if (more_waiting or batch) else settings.block_ms
            reply = await self._redis.xread(streams, count=settings.read_count, block=block)
            for key, entries in reply or ():
                if key == self._dispatch_key:
                    wake_id = entries[-1][0]
                    continue
                handler = self._handlers[key]
                frames = handler.accept(entries)
                worker.stats.events += len(entries)
                if frames:
                    batch.frames.append((handler, frames))
            if batch:
                await self._publish(batch)

    async def _publish(self, batch: Batch) -> None:
        worker = self._worker
        verdicts = await worker._publisher.publish(batch)
        worker.stats.frames += sum(len(frames) for _, frames in batch.frames)
        for handler, _ in batch.frames:
            verdict, outcome = verdicts[handler.message_id], handler.outcome
            if verdict is Verdict.WRITTEN and outcome is None:
                continue
            self._forget(handler)
            fields = {"message_id": handler.message_id, "entry_id": handler.delivery_id.decode()}
            if verdict is Verdict.LOST:
                worker.stats.lost_claims += 1
                log.warning("claim-lost", **fields)
            elif verdict is Verdict.ALREADY_COMMITTED:
                log.info("already-committed", **fields)
            elif outcome is not None and outcome.status == "completed":
                worker.stats.completed += 1
                log.info("completed", events=handler.event_count, **fields)
            elif outcome is not None and outcome.error is not None:
                worker.stats.failed += 1
                verb = "dead-lettered" if handler.poison else "failed"
                log.warning(verb, code=outcome.error["code"], error=outcome.error["message"], **fields)

    def _forget(self, handler: MessageHandler) -> None:
        del self._handlers[handler.keys.events.encode()]
        self._worker._release(1)

    async def _claim(self, want: int, from_history: bool, batch: Batch) -> int:
        reply = await self._redis.xreadgroup(
            self._settings.group, self._settings.consumer,
            {self._dispatch: "0" if from_history else ">"}, count=want,
        )  # fmt: skip
        opened = 0
        rejected: list[tuple[bytes, str, str, str]] = []
        for _, entries in reply or ():
            for delivery_id, fields in entries:
                handler = self._open(delivery_id, fields or {}, rejected)
                if handler is not None:
                    self._handlers[handler.keys.events.encode()] = handler
                    batch.started.append(handler)
                    opened += 1
        if rejected:
            await self._worker._publisher.reject(self._dispatch, rejected)
        return opened

    def _open(
        self,
        delivery_id: bytes,
        fields: Mapping[bytes, bytes],
        rejected: list[tuple[bytes, str, str, str]],
    ) -> MessageHandler | None:
        worker = self._worker
        entry_id = delivery_id.decode()
        raw_id = fields.get(b"m", b"").decode(errors="replace")
        try:
            keys = worker._keyspace.message(raw_id)
        except InvalidMessageIdError as exc:
            # No key can be built for it, so no frame or outcome: dead-letter and ack.
            rejected.append((delivery_id, raw_id, "invalid_message_id", str(exc)))
            log.error("dead-lettered", entry_id=entry_id, reason="invalid_message_id", error=str(exc))
            return None
        if keys.dispatch != self._dispatch:
            error = f"message {raw_id} belongs to {keys.dispatch}, not {self._dispatch}"
            rejected.append((delivery_id, raw_id, "wrong_partition", error))
            log.error("dead-lettered", message_id=raw_id, entry_id=entry_id, reason="wrong_partition")
            return None
        log.debug("claimed", message_id=raw_id, entry_id=entry_id)
        return MessageHandler.from_dispatch(
            keys, delivery_id, fields,
            limits=worker._limits, max_events=self._settings.max_events_per_message,
        )  # fmt: skip

    async def _last_dispatch_id(self) -> bytes:
        last = await self._redis.xrevrange(self._dispatch, count=1)
        return last[0][0] if last else b"0-0"

    async def _await_capacity(self) -> None:
        self._worker._capacity_freed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._worker._capacity_freed.wait(), self._settings.block_ms / 1000)

    async def _release_held(self) -> None:
        """Hand unfinished messages back: idle far past the takeover time, so a peer takes them now."""
        if not self._handlers:
            return
        ids: list[StreamIdT] = [h.delivery_id for h in self._handlers.values()]
        await self._redis.xclaim(
            self._dispatch, self._settings.group, self._settings.consumer, 0, ids,
            idle=self._settings.takeover_after_ms * 1000, justid=True,
        )  # fmt: skip
        log.info("released", partition=self._k, messages=len(ids))
