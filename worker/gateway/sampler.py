"""The operations page's one sampler: Redis and the workers' figures, read once per interval for every
browser watching.

Each sample costs Redis `3 + 2N` commands (N partitions): HGETALL of
`P:workers`, XINFO GROUPS and XINFO CONSUMERS of each `D(k)`, XLEN and one
XREVRANGE of `P:dead`. Browsers read the samples from memory
(`GET /v1/operations`), so fifty of them cost Redis what one does. The sampler
runs for the gateway's lifetime, so a page opened now shows the last minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any, cast

import structlog
from redis.exceptions import RedisError

from lcstream.streams.cluster import RedisClient
from lcstream.streams.events import now_ms
from lcstream.streams.groups import group_backlog, group_consumers
from lcstream.streams.keys import Keyspace
from lcstream.worker.deadletters import list_dead_letters
from lcstream.worker.gateway.fleet import FleetFigures, parse_figures

log = structlog.get_logger("lcstream.gateway")

DEAD_LETTERS_SHOWN = 50


class OperationsSampler:
    """Samples the fleet every `interval_s` and keeps `window_s` of samples."""

    def __init__(
        self, redis: RedisClient, keyspace: Keyspace, group: str, *, interval_s: float, window_s: int
    ) -> None:
        self._redis = redis
        self._keyspace = keyspace
        self._group = group
        self.interval_s = interval_s
        self.window_s = window_s
        self.samples: deque[dict[str, Any]] = deque(maxlen=int(window_s / interval_s) + 1)
        self.fleet = FleetFigures()
        self.workers: list[dict[str, Any]] = []
        self.dead_letters: dict[str, Any] = {"total": 0, "letters": []}
        self.problem: str | None = None
        self.sampled_at_ms: int | None = None
        self._seq = 0
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        """Sample every `interval_s` until `stop()`; a Redis fault is shown as the problem and retried.

        Samples keep to a fixed grid, so a late wake-up (a busy gateway) does not slow the cadence; a
        sample that outlasts the interval moves the grid instead of queueing up samples behind it.
        """
        due = time.monotonic()
        while not self._stopped.is_set():
            try:
                await self.sample()
            except (RedisError, OSError) as exc:  # unreachable, or a key of another type (WRONGTYPE)
                if self.problem is None:
                    log.warning("operations-sampling-failed", error=str(exc))
                self.problem = f"sampling Redis failed: {exc}"
            due = max(due + self.interval_s, time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), due - time.monotonic())

    def stop(self) -> None:
        """End `run()` after the sample in progress (cancelling it works too, and is quicker)."""
        self._stopped.set()

    async def sample(self) -> None:
        """Read Redis once and append a sample."""
        raw = await cast("Awaitable[dict[bytes, bytes]]", self._redis.hgetall(self._keyspace.workers))
        self.fleet.update(parse_figures(raw))
        lag: list[int | None] = []
        pending: list[int | None] = []
        consumers: dict[str, dict[str, Any]] = {}
        for k, dispatch in enumerate(self._keyspace.all_dispatch()):
            backlog = await group_backlog(self._redis, dispatch, self._group)
            lag.append(backlog.lag if backlog else None)
            pending.append(backlog.pending if backlog else None)
            if backlog is None:
                continue
            for consumer in await group_consumers(self._redis, dispatch, self._group):
                seen = consumers.setdefault(consumer.name, {"pending": 0, "idle_ms": None, "partitions": []})
                seen["pending"] += consumer.pending
                seen["partitions"].append(k)
                idle = consumer.idle_ms
                seen["idle_ms"] = idle if seen["idle_ms"] is None else min(seen["idle_ms"], idle)
        letters = await list_dead_letters(self._redis, self._keyspace, count=DEAD_LETTERS_SHOWN)
        self.dead_letters = {
            "total": await self._redis.xlen(self._keyspace.dead),
            "letters": [dataclasses.asdict(letter) for letter in letters],
        }
        self.workers = self._workers(consumers)
        self._seq += 1
        self.sampled_at_ms = now_ms()
        running = sum(worker["running"] for worker in self.workers)
        self.samples.append(
            {"seq": self._seq, "time_ms": self.sampled_at_ms, **self.fleet.rates(self.interval_s),
             "lag": lag, "pending": pending, "workers": running}
        )  # fmt: skip
        self.problem = None

    def _workers(self, consumers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        rows = []
        for name in sorted(set(consumers) | set(self.fleet.names())):
            group = consumers.get(name, {"pending": 0, "idle_ms": None, "partitions": []})
            figures = self.fleet.latest(name)
            rows.append({
                "consumer": name,
                "host": figures.host if figures else None,
                "pid": figures.pid if figures else None,
                "running": self.fleet.running(name),
                "open_messages": figures.open_messages if figures else None,
                "pending": group["pending"],
                "holds_entries": group["pending"] > 0,
                "idle_ms": group["idle_ms"],
                "last_seen_ms": figures.time_ms if figures else None,
                "partitions": group["partitions"],
            })  # fmt: skip
        return rows

    def view(self, after: int | None = None) -> dict[str, Any]:
        """What `GET /v1/operations` answers: samples newer than `after` (all without it), and now."""
        if after is not None and after > self._seq:
            after = None  # a seq from before this gateway started: the browser starts over
        samples = [s for s in self.samples if after is None or s["seq"] > after]
        return {
            "interval_s": self.interval_s,
            "window_s": self.window_s,
            "group": self._group,
            "partitions": self._keyspace.partitions,
            "samples": samples,
            "workers": self.workers,
            "dead_letters": self.dead_letters,
            "sampled_at_ms": self.sampled_at_ms,
            "problem": self.problem,
        }
