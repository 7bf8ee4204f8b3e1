"""A Prometheus registry of one's own, and the metrics declared in it (one per worker or gateway app, so
several can share a process, as the tests do)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Seconds: token streams live in milliseconds; a backlog or a takeover in seconds.
DELAY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class MetricSet:
    """Declares metrics in its own `registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """A counter (`_total` is added to `name` on the page)."""
        return Counter(name, documentation, labels, registry=self.registry)

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        """A gauge."""
        return Gauge(name, documentation, labels, registry=self.registry)

    def histogram(self, name: str, documentation: str) -> Histogram:
        """A histogram of seconds, in `DELAY_BUCKETS_S`."""
        return Histogram(name, documentation, buckets=DELAY_BUCKETS_S, registry=self.registry)
