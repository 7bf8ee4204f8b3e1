"""The worker's Prometheus metrics, in a registry of its own.

Counters that move per event (events, frames) are read from `WorkerStats` when
Prometheus scrapes, so the hot path pays nothing for them; what needs labels
or a distribution is recorded once per message per write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.groups import GroupBacklog
from worker.stats import WorkerStats

# Seconds: token streams live in milliseconds; a backlog or a takeover in seconds.
DELAY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _StatsCollector(Collector):
    """`WorkerStats` and the open-message count, read at scrape time."""

    def __init__(
        self, stats: WorkerStats, open_messages: Callable[[], int], waiting_messages: Callable[[], int]
    ) -> None:
        self._stats = stats
        self._open_messages = open_messages
        self._waiting_messages = waiting_messages

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self._stats
        for name, value, help_text in (
            ("events", stats.events, "Events read from E(M) streams and dispatched."),
            ("frames", stats.frames, "Frames written to O(M) and published on L(M)."),
            ("takeovers", stats.taken_over, "Abandoned messages taken over from a peer."),
            ("lost_claims", stats.lost_claims, "Messages whose claim a peer took over from this worker."),
        ):
            yield CounterMetricFamily(f"lcstream_worker_{name}", help_text, value=value)
        yield GaugeMetricFamily(
            "lcstream_worker_open_messages", "Messages this worker holds open.", value=self._open_messages()
        )
        yield GaugeMetricFamily(
            "lcstream_worker_waiting_messages",
            "Claimed messages whose events stream does not exist yet (no open slot taken).",
            value=self._waiting_messages(),
        )


class BacklogGauges:
    """The consumer group's backlog on each `D(k)`: the worker's upkeep and the gateway's scrape
    both set them (the gateway is up while no worker is, which is when the lag matters)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lag = Gauge(
            "lcstream_group_lag",
            "Dispatch entries not yet delivered to the consumer group, per partition.",
            ["partition"],
            registry=registry,
        )
        self._pending = Gauge(
            "lcstream_group_pending",
            "Dispatch entries delivered but not yet acknowledged (open messages), per partition.",
            ["partition"],
            registry=registry,
        )

    def record(self, partition: int, backlog: GroupBacklog) -> None:
        """Set partition `partition`'s gauges (the lag only when Redis could tell it)."""
        self._pending.labels(str(partition)).set(backlog.pending)
        if backlog.lag is not None:
            self._lag.labels(str(partition)).set(backlog.lag)


class WorkerMetrics:
    """Everything `/metrics` shows for one worker."""

    def __init__(
        self, stats: WorkerStats, open_messages: Callable[[], int], waiting_messages: Callable[[], int]
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StatsCollector(stats, open_messages, waiting_messages))
        self.outcomes = Counter(
            "lcstream_worker_outcomes",
            "Messages ended by this worker, by status and reason (completed, or the failure code).",
            ["status", "reason"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "lcstream_worker_dead_letters", "Entries written to P:dead.", registry=self.registry
        )
        self.write_seconds = Histogram(
            "lcstream_worker_write_seconds",
            "Time of one round's fenced write (frames, publishes, commits) in Redis.",
            buckets=DELAY_BUCKETS_S,
            registry=self.registry,
        )
        self.delay_seconds = Histogram(
            "lcstream_worker_delay_seconds",
            "Producer time t to frames published, for the message of a write that waited longest "
            "(one sample per write).",
            buckets=DELAY_BUCKETS_S,
            registry=self.registry,
        )
        self.backlog = BacklogGauges(self.registry)
