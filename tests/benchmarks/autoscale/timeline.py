"""The record of a scenario: one row per controller tick, the probe's seconds, and summaries of windows."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.benchmarks.autoscale import histogram, worker_delay


@dataclass
class Row:
    """One controller tick; delays and events/s cover the probe's seconds since the previous tick."""

    t: float  # s since the profile's time 0
    offered_messages_per_s: float  # the profile's arrival rate
    offered_events_per_s: float  # tokens/s of the messages streaming by the schedule
    announced_per_s: float  # dispatch entries added since the previous tick, per s (measured)
    open: int  # the group's pending entries: messages some worker holds
    lag: int  # entries no worker has taken
    lags: list[int | None]
    workers: int  # replicas (starting ones included, stopping ones not)
    ready: int
    stopping: int
    desired: int  # what the rule asked for (applied only when autoscaled)
    raw: int  # the rule's recommendation before stabilization and policies
    cpu: list[float | None]  # each replica's utilization, % of one core
    machine_busy: float  # % of all cores
    foreign_cpu: float  # % of one core used by processes not of this scenario (e.g. another benchmark)
    events_per_s: float | None  # text frames/s delivered (probe's sample scaled up)
    p50_ms: float | None
    p99_ms: float | None
    open_by_consumer: dict[str, int] = field(default_factory=dict)
    worker_delay: worker_delay.Buckets = field(default_factory=dict)  # the workers' own, since the last tick


@dataclass
class Outcomes:
    completed: int = 0
    failed: int = 0
    missing: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # error code: count


@dataclass
class ScenarioResult:
    name: str
    autoscaled: bool
    messages: int
    rows: list[Row] = field(default_factory=list)
    probe_seconds: list[dict[str, Any]] = field(default_factory=list)  # t is s since time 0
    scale_events: list[dict[str, Any]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)  # how each worker ended
    outcomes: Outcomes = field(default_factory=Outcomes)
    drained_s: float | None = None  # after the last arrival's end, until every outcome was in
    load: dict[str, Any] = field(default_factory=dict)  # the load process's `stopped` line
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        """Whole-run figures: peaks, cost in worker-seconds, delay percentiles, outcomes."""
        rows = self.rows
        merged = histogram.merge(histogram.from_json(s["hist"]) for s in self.probe_seconds)
        own = worker_delay.merge(r.worker_delay for r in rows)
        stops = [float(w["stop_s"]) for w in self.workers if w["stop_s"] is not None]
        return {
            "peak_lag": max((r.lag for r in rows), default=0),
            "peak_open": max((r.open for r in rows), default=0),
            "peak_workers": max((r.workers for r in rows), default=0),
            "peak_desired": max((r.desired for r in rows), default=0),
            "worker_seconds": round(sum(a.workers * (b.t - a.t) for a, b in itertools.pairwise(rows)), 1),
            "p50_ms": histogram.percentile_ms(merged, 0.5),
            "p99_ms": histogram.percentile_ms(merged, 0.99),
            "p999_ms": histogram.percentile_ms(merged, 0.999),
            "delay_samples": sum(merged.values()),
            "worker_writes": worker_delay.writes(own),
            "worker_p50_le_ms": worker_delay.quantile_bound_ms(own, 0.5),
            "worker_p99_le_ms": worker_delay.quantile_bound_ms(own, 0.99),
            "scale_ups": sum(e["to"] > e["from"] for e in self.scale_events),
            "scale_downs": sum(e["to"] < e["from"] for e in self.scale_events),
            "completed": self.outcomes.completed,
            "failed": self.outcomes.failed,
            "missing": self.outcomes.missing,
            "lost": self.outcomes.failed + self.outcomes.missing,
            "drained_s": self.drained_s,
            "stops": len(stops),
            "stop_s_max": max(stops, default=None),
            "killed": sum(bool(w["killed"]) for w in self.workers),
            "machine_busy_mean": _mean([r.machine_busy for r in rows]),
            "foreign_cpu_mean": _mean([r.foreign_cpu for r in rows]),
        }


@dataclass(frozen=True)
class Window:
    """Figures of one time window of a scenario."""

    start: float
    end: float
    offered_messages_per_s: float
    workers_mean: float
    workers_max: int
    lag_max: int
    open_max: int
    p50_ms: float | None
    p99_ms: float | None
    worker_p99_le_ms: float | None  # the workers' own delay: the bucket bound 99% of writes fall under


def windows(result: ScenarioResult, width_s: float, end_s: float) -> list[Window]:
    """Consecutive `width_s` windows from 0 to `end_s`: rows by their tick time, delays by the probe's
    seconds in the window."""
    found = []
    for i in range(math.ceil(end_s / width_s)):
        start, end = i * width_s, min(end_s, (i + 1) * width_s)
        rows = [r for r in result.rows if start <= r.t < end]
        seconds = [s for s in result.probe_seconds if start <= s["t"] < end]
        merged = histogram.merge(histogram.from_json(s["hist"]) for s in seconds)
        found.append(
            Window(
                start=start,
                end=end,
                offered_messages_per_s=_mean([r.offered_messages_per_s for r in rows]),
                workers_mean=_mean([r.workers for r in rows]),
                workers_max=max((r.workers for r in rows), default=0),
                lag_max=max((r.lag for r in rows), default=0),
                open_max=max((r.open for r in rows), default=0),
                p50_ms=histogram.percentile_ms(merged, 0.5),
                p99_ms=histogram.percentile_ms(merged, 0.99),
                worker_p99_le_ms=worker_delay.quantile_bound_ms(
                    worker_delay.merge(r.worker_delay for r in rows), 0.99
                ),
            )
        )
    return found


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 2) if values else 0.0
