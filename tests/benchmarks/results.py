"""One row of the benchmark: a system on a workload, and its figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.benchmarks.measure import RedisUsage

CEILING = "ceiling: in-process dispatch"
LCSTREAM_1 = "lcstream, 1 worker"
LCSTREAM_2 = "lcstream, 2 workers"
NAIVE = "naive worker"


@dataclass(frozen=True)
class Latency:
    """End-to-end latency, producer timestamp to frame received by a live subscriber, in ms."""

    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    samples: int


@dataclass
class Result:
    """A system's figures on one workload; None where a figure does not apply."""

    workload: str
    system: str
    shape: str  # the workload's size, e.g. "200 messages x 500 tokens"
    events: int
    events_per_s: float | None = None
    loop_s: float | None = None  # first worker `started` to last `stopped` (the run itself)
    wall_s: float | None = None  # workers released (or generator started) to the last exit
    worker_cpu_us_per_event: float | None = None
    redis_cpu_us_per_event: float | None = None
    redis_commands_per_event: float | None = None
    redis_calls_per_event: dict[str, float] = field(default_factory=dict)
    target_events_per_s: float | None = None
    latency: Latency | None = None
    rss_mb: float | None = None
    rss_per_open_message_kb: float | None = None
    completed: int | None = None
    expected: int | None = None
    verified: int = 0  # messages whose R(M) was compared with the in-process oracle (all equal)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add_redis(self, usage: RedisUsage, events: int) -> None:
        """Redis CPU and commands per event."""
        if events:
            self.redis_cpu_us_per_event = round(usage.cpu_s * 1e6 / events, 2)
            self.redis_commands_per_event = round(usage.commands / events, 3)
            self.redis_calls_per_event = usage.per_event(events)


def median_run(runs: list[Result]) -> Result:
    """The run with the median events/s (the lower one of an even count), noting the spread."""
    if len(runs) == 1:
        return runs[0]
    ranked = sorted(runs, key=lambda r: r.events_per_s or 0)
    median = ranked[(len(ranked) - 1) // 2]
    rates = [r.events_per_s or 0 for r in runs]
    median.extra["runs_events_per_s"] = rates
    median.notes.insert(0, f"median of {len(runs)} runs ({min(rates):,.0f} to {max(rates):,.0f} events/s)")
    return median
