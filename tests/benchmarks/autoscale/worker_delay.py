"""The workers' own delay, from each one's `/metrics`: `lcstream_worker_own_delay_seconds`, one sample
per write (newest event produced to frames published, for the message that waited longest in it,
counting events produced after the worker caught up with their message): what the load-aware intake
holds under `LCSTREAM_TARGET_DELAY_MS`.

Unlike the probe's end-to-end delay it leaves out the time a message waited in
the lag for a worker, so it shows whether a worker keeps its delay target while
work queues. Buckets are Prometheus' (`worker/observability/registry.py`), so a
percentile is reported as the bucket bound it falls under.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

METRIC = "lcstream_worker_own_delay_seconds"
Buckets = dict[float, float]  # upper bound s -> cumulative count


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int, timeout_s: float = 1.0) -> Buckets:
    """The cumulative delay buckets a worker serves on `port` (empty when it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as reply:
            text = reply.read().decode()
    except OSError:
        return {}
    for family in text_string_to_metric_families(text):
        if family.name == METRIC:
            return {float(s.labels["le"]): s.value for s in family.samples if s.name == f"{METRIC}_bucket"}
    return {}


class DelayDeltas:
    """Each worker's buckets since its previous scrape, summed over the workers."""

    def __init__(self) -> None:
        self._last: dict[int, Buckets] = {}

    def since_last(self, ports: Iterable[int]) -> Buckets:
        total: Buckets = {}
        for port in ports:
            now = scrape(port)
            if not now:
                continue
            before = self._last.get(port, {})
            self._last[port] = now
            for bound, count in now.items():
                total[bound] = total.get(bound, 0.0) + count - before.get(bound, 0.0)
        return total


def merge(parts: Iterable[Buckets]) -> Buckets:
    total: Buckets = {}
    for part in parts:
        for bound, count in part.items():
            total[bound] = total.get(bound, 0.0) + count
    return total


def writes(buckets: Buckets) -> int:
    return round(buckets.get(float("inf"), 0.0))


def quantile_bound_ms(buckets: Buckets, q: float) -> float | None:
    """The smallest bucket bound (ms) that at least `q` of the writes fall under."""
    total = buckets.get(float("inf"), 0.0)
    if not total:
        return None
    for bound in sorted(buckets):
        if buckets[bound] >= q * total:
            return bound * 1000
    return None


def share_within(buckets: Buckets, bound_s: float) -> float | None:
    """The share of writes whose delay was at most `bound_s` (a bucket bound)."""
    total = buckets.get(float("inf"), 0.0)
    return buckets.get(bound_s, 0.0) / total if total else None
