"""A partition's one write in flight: it takes a frozen batch, and the round applies what comes back.

`start()` takes a `Batch` of what the held messages made and writes it in a
task; `settle()` waits for that task and applies each message's verdict to the
message it holds: a written ending lets the message go, a lost claim too, a
wrong type or an event after the end makes it end failed instead, and a
refused write goes back in front of the message's newer frames, to be written
again after a back-off (`retry_at`) during which nothing new is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from redis.exceptions import RedisError

from lcstream.streams.backoff import Backoff
from lcstream.worker.engine.batch import Batch, MessageWrite, Verdict, WriteVerdict
from lcstream.worker.engine.handler import MessageHandler
from lcstream.worker.engine.held import Held
from lcstream.worker.engine.publisher import FramePublisher
from lcstream.worker.engine.state import WorkerState

log = structlog.get_logger("lcstream.worker")


class Writer:
    """Writes what one partition's held messages made, one batch at a time."""

    def __init__(self, worker: WorkerState, k: int, publisher: FramePublisher, held: Held) -> None:
        self._worker = worker
        self._k = k
        self._publisher = publisher
        self._held = held
        self._writing: asyncio.Task[tuple[Batch[MessageHandler], list[WriteVerdict]]] | None = None
        self._refusals = Backoff().delays()
        self.retry_at: float | None = None  # after a refusal: when to write again

    @property
    def in_flight(self) -> bool:
        """Whether a write is on its way."""
        return self._writing is not None

    def start(self) -> None:
        """Write what the held messages made since the last write (unless a refusal's back-off runs)."""
        held = self._held
        if self.retry_at is not None:
            if time.monotonic() < self.retry_at:
                return
            if not held.dirty:  # what was refused is no longer held (its lease was lost)
                self.retry_at = None
        writes = tuple(write for handler in held.dirty if (write := handler.take_write()) is not None)
        held.dirty.clear()
        if not writes and not held.started:
            return
        timed = [(w.handler.last_event_at, w.handler.caught_up_at) for w in writes if w.frames]
        # Events produced once the worker had caught up with their message: what it read late is on it.
        own = [at for at, caught_up in timed if caught_up is not None and at > caught_up]
        batch = Batch(
            writes, tuple(held.started),
            produced_at=min(at for at, _ in timed) if timed else None,
            own_from=min(own) if own else None,
        )  # fmt: skip
        held.started.clear()
        self._writing = asyncio.create_task(self._write(batch), name=f"write-{self._k}")

    async def settle(self) -> None:
        """Wait for the write in flight (its faults surface here) and apply its verdicts."""
        if self._writing is None:
            return
        writing, self._writing = self._writing, None
        batch, verdicts = await writing
        refused = ""
        for write, verdict in zip(batch.writes, verdicts, strict=True):
            refused = self._apply(write, verdict) or refused
        if refused:
            delay_s = next(self._refusals)
            if self.retry_at is None:
                log.warning("write-refused", partition=self._k, error=refused, retry_in_s=round(delay_s, 3))
            self.retry_at = time.monotonic() + delay_s
        elif self.retry_at is not None:
            log.info("write-resumed", partition=self._k)
            self.retry_at, self._refusals = None, Backoff().delays()

    async def cancel(self) -> None:
        """Drop the write in flight (a fault ended the rounds: its outcome is moot)."""
        if self._writing is not None:
            self._writing.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await self._writing
            self._writing = None

    async def _write(self, batch: Batch[MessageHandler]) -> tuple[Batch[MessageHandler], list[WriteVerdict]]:
        metrics = self._worker.metrics
        started_at = time.monotonic()
        verdicts = await self._publisher.publish(batch)
        written_at = time.monotonic()
        metrics.write_seconds.observe(written_at - started_at)
        if batch.produced_at is not None:  # one sample per write: what a reader waited longest
            metrics.delay_seconds.observe(max(0.0, written_at - batch.produced_at))
        if batch.own_from is not None:
            own_delay_s = max(0.0, written_at - batch.own_from)
            metrics.own_delay_seconds.observe(own_delay_s)
            self._worker.load.record(self._k, own_delay_s)
        return batch, verdicts

    def _apply(self, write: MessageWrite[MessageHandler], verdict: WriteVerdict) -> str:
        """Apply one message's verdict; return Redis's error when the write was refused."""
        handler, held, worker = write.handler, self._held, self._worker
        if not held.holds(handler):
            return ""  # let go meanwhile: an upkeep found the lease lost
        if verdict.verdict is Verdict.REFUSED:
            handler.requeue(write)
            held.mark(handler)
            return verdict.detail
        if verdict.verdict in (Verdict.WRONG_TYPE, Verdict.AFTER_TERMINAL):
            wrong_type = verdict.verdict is Verdict.WRONG_TYPE
            reason = "wrong_type" if wrong_type else "after_terminal"
            handler.end_instead(write, reason, verdict.detail, wrong_type=wrong_type)
            held.mark(handler)
            return ""
        fields = {"message_id": handler.message_id, "entry_id": handler.delivery_id.decode()}
        if verdict.verdict is Verdict.LOST:
            held.forget(handler)
            worker.stats.lost_claims += 1
            log.warning("claim-lost", **fields)
            return ""
        if verdict.verdict is Verdict.WRITTEN:
            worker.stats.frames += len(write.frames)
        if (ending := write.ending) is None:
            return ""
        held.forget(handler)
        if verdict.verdict is Verdict.ALREADY_COMMITTED:
            log.info("already-committed", **fields)
            return ""
        outcome, metrics = ending.outcome, worker.metrics
        reason = "completed" if outcome.error is None else outcome.error["code"]
        metrics.outcomes.labels(outcome.status, reason).inc()
        if outcome.error is None:
            worker.stats.completed += 1
            log.info("completed", events=handler.event_count, **fields)
            return ""
        worker.stats.failed += 1
        if ending.dead is not None:
            metrics.dead_letters.inc()
        verb = "dead-lettered" if ending.dead else "failed"
        log.warning(verb, code=outcome.error["code"], error=outcome.error["message"], **fields)
        return ""
