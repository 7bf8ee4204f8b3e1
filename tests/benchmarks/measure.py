"""Counters read around a run: Redis CPU and commands, and percentiles of latency samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

# The benchmark's own probes; the rest is what the systems under test (and the generator) asked for.
_PROBES = frozenset({"info", "ping", "xlen", "save", "client|pause", "client|unpause", "client|list"})


@dataclass(frozen=True)
class RedisCounters:
    """Redis's CPU seconds (all threads) and calls per command, at one moment."""

    cpu_s: float
    calls: dict[str, int]

    @classmethod
    async def read(cls, redis: Redis) -> RedisCounters:
        cpu = await redis.info("cpu")
        stats = await redis.info("commandstats")
        calls = {name.removeprefix("cmdstat_"): int(figures["calls"]) for name, figures in stats.items()}
        return cls(cpu_s=float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), calls=calls)

    def since(self, before: RedisCounters) -> RedisUsage:
        """What happened between `before` and this reading, minus the benchmark's own probes."""
        calls = {
            name: count - before.calls.get(name, 0)
            for name, count in self.calls.items()
            if name not in _PROBES and count > before.calls.get(name, 0)
        }
        return RedisUsage(cpu_s=self.cpu_s - before.cpu_s, calls=calls)


@dataclass(frozen=True)
class RedisUsage:
    """Redis CPU seconds and command calls over a run.

    Calls are Redis's `commandstats`: every command counts once, including each
    command inside MULTI/EXEC and a pipeline, the MULTI and EXEC themselves, and
    each `redis.call` a Lua script makes besides its EVAL/EVALSHA; a blocked XREAD
    counts once, when it is answered.
    """

    cpu_s: float
    calls: dict[str, int]

    @property
    def commands(self) -> int:
        return sum(self.calls.values())

    def per_event(self, events: int) -> dict[str, float]:
        """Calls per event, by command, most frequent first."""
        ranked = sorted(self.calls.items(), key=lambda item: -item[1])
        return {name: round(count / events, 4) for name, count in ranked} if events else {}


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence (`fraction` 0.99 for p99)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]
