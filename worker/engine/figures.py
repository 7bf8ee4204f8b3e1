"""A worker's published figures: its counters, written to `P:workers` for the gateway's operations page.

Every `LCSTREAM_FIGURES_INTERVAL_S` the worker sets its own field of the hash
`P:workers` (its consumer name) to a JSON snapshot of its counters since start,
its open messages and its delay histogram's buckets. Readers take rates and
quantiles from two snapshots of the same worker, so the figures need no clock
shared between machines and no Prometheus. A stopping worker removes its
field; the fields of workers gone without a word are removed by their peers
once older than `LCSTREAM_REMOVE_IDLE_CONSUMERS_AFTER_S`.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Iterable
from typing import cast

import orjson
import structlog
from prometheus_client import Counter, Histogram
from redis.exceptions import RedisError

from lcstream.streams.cluster import RedisClient
from lcstream.streams.events import now_ms
from lcstream.worker.engine.state import WorkerState
from lcstream.worker.observability.figures import WorkerFigures

log = structlog.get_logger("lcstream.worker")

PRUNE_EVERY = 60  # publications between two looks for fields of gone workers


def outcome_counts(counter: Counter) -> dict[str, int]:
    """Messages ended, by `completed` or `failed:<reason>`, from the worker's outcomes counter."""
    counts: dict[str, int] = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                status, reason = sample.labels["status"], sample.labels["reason"]
                counts[status if status == "completed" else f"{status}:{reason}"] = int(sample.value)
    return counts


def bucket_counts(histogram: Histogram) -> tuple[list[float], list[int]]:
    """A histogram's upper bounds (`+Inf` as the last) and its cumulative counts, in order."""
    bounds: list[float] = []
    counts: list[int] = []
    for family in histogram.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bounds.append(float(sample.labels["le"]))
                counts.append(int(sample.value))
    return bounds, counts


def snapshot(state: WorkerState, *, started_ms: int, time_ms: int) -> WorkerFigures:
    """What the worker publishes now."""
    settings, stats, metrics = state.settings, state.stats, state.metrics
    bounds, counts = bucket_counts(metrics.delay_seconds)
    return WorkerFigures(
        consumer=settings.consumer,
        host=socket.gethostname(),
        pid=os.getpid(),
        started_ms=started_ms,
        time_ms=time_ms,
        stopping=state.stopping,
        open_messages=state.open_messages,
        waiting_messages=state.waiting_messages,
        events=stats.events,
        frames=stats.frames,
        ended=outcome_counts(metrics.outcomes),
        delay_le=[bound if bound != float("inf") else None for bound in bounds],  # JSON has no Infinity
        delay_counts=counts,
    )


def stale_fields(raw: dict[bytes, bytes], *, older_than_ms: int) -> list[bytes]:
    """Fields of `P:workers` whose figures were last published before `older_than_ms` (or unreadable)."""
    stale = []
    for field, value in raw.items():
        try:
            published_ms = int(orjson.loads(value)["time_ms"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            published_ms = 0
        if published_ms < older_than_ms:
            stale.append(field)
    return stale


class FiguresPublisher:
    """Publishes one worker's figures until cancelled; Redis faults are logged and retried next time."""

    def __init__(self, redis: RedisClient, state: WorkerState) -> None:
        self._redis = redis
        self._state = state
        self._key = state.keyspace.workers
        self._started_ms = now_ms()

    async def publish(self) -> None:
        """Set this worker's field to its figures now."""
        figures = snapshot(self._state, started_ms=self._started_ms, time_ms=now_ms())
        published = self._redis.hset(self._key, self._state.settings.consumer, figures.model_dump_json())
        await cast("Awaitable[int]", published)

    async def prune(self) -> None:
        """Remove the fields of workers silent for longer than the idle-consumer bound."""
        bound_ms = int(self._state.settings.remove_idle_consumers_after_s * 1000)
        raw = await cast("Awaitable[dict[bytes, bytes]]", self._redis.hgetall(self._key))
        stale = stale_fields(raw, older_than_ms=now_ms() - bound_ms)
        if stale:
            await cast("Awaitable[int]", self._redis.hdel(self._key, *map(bytes.decode, stale)))
            log.info("figures-pruned", workers=_names(stale))

    async def run(self, interval_s: float) -> None:
        """Publish every `interval_s` (and prune now and then) for as long as the worker runs."""
        rounds = 0
        while True:
            try:
                await self.publish()
                if rounds % PRUNE_EVERY == 0:
                    await self.prune()
            except (RedisError, OSError) as exc:  # the partitions report Redis faults; these figures wait
                log.debug("figures-unpublished", error=str(exc))
            rounds += 1
            await asyncio.sleep(interval_s)

    async def withdraw(self) -> None:
        """Remove this worker's field (it stops); a fault leaves it to the peers' pruning."""
        try:
            await cast("Awaitable[int]", self._redis.hdel(self._key, self._state.settings.consumer))
        except (RedisError, OSError) as exc:
            log.warning("figures-not-withdrawn", error=str(exc))


def _names(fields: Iterable[bytes]) -> list[str]:
    return [field.decode(errors="replace") for field in fields]
