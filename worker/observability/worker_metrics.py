"""The worker's Prometheus metrics, in a registry of its own.

Counters that move per event (events, frames) are read from `WorkerStats` when
Prometheus scrapes, so the hot path pays nothing for them; what needs labels
or a distribution is recorded once per message per write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from lcstream.streams.groups import GroupBacklog
from lcstream.worker.observability.registry import MetricSet
from lcstream.worker.observability.stats import WorkerStats


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

    def __init__(self, metrics: MetricSet) -> None:
        self._lag = metrics.gauge(
            "lcstream_group_lag",
            "Dispatch entries not yet delivered to the consumer group, per partition.",
            ["partition"],
        )
        self._pending = metrics.gauge(
            "lcstream_group_pending",
            "Dispatch entries delivered but not yet acknowledged (open messages), per partition.",
            ["partition"],
        )

    def record(self, partition: int, backlog: GroupBacklog) -> None:
        """Set partition `partition`'s gauges (the lag only when Redis could tell it)."""
        self._pending.labels(str(partition)).set(backlog.pending)
        if backlog.lag is not None:
            self._lag.labels(str(partition)).set(backlog.lag)


class WorkerMetrics(MetricSet):
    """Everything `/metrics` shows for one worker."""

    def __init__(
        self, stats: WorkerStats, open_messages: Callable[[], int], waiting_messages: Callable[[], int]
    ) -> None:
        super().__init__()
        self.registry.register(_StatsCollector(stats, open_messages, waiting_messages))
        self.outcomes = self.counter(
            "lcstream_worker_outcomes",
            "Messages ended by this worker, by status and reason (completed, or the failure code).",
            ["status", "reason"],
        )
        self.dead_letters = self.counter("lcstream_worker_dead_letters", "Entries written to P:dead.")
        self.write_seconds = self.histogram(
            "lcstream_worker_write_seconds",
            "Time of one round's fenced write (frames, publishes, commits) in Redis.",
        )
        self.delay_seconds = self.histogram(
            "lcstream_worker_delay_seconds",
            "Producer time t to frames published, for the message of a write that waited longest "
            "(one sample per write).",
        )
        self.own_delay_seconds = self.histogram(
            "lcstream_worker_own_delay_seconds",
            "The same, for events produced after the worker caught up with their message: the delay "
            "this worker adds, which it keeps under LCSTREAM_TARGET_DELAY_MS by taking no new "
            "messages past it.",
        )
        self.backlog = BacklogGauges(self)
