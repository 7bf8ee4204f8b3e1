"""A worker's own delay against its target: whether it keeps up, and so whether it takes new messages.

Every write records one sample for its partition: how long the message that
waited longest in it took from its newest event to its frames published,
counting only events produced after the worker caught up with their message.
A message claimed from the lag (or a backlog) comes with events that waited
before any worker held it: reading them is throughput (and the fleet's
shortfall, which the lag shows), not this worker's lateness. A read that waited and found
nothing, or a partition holding nothing to read, records 0: nothing is late.
Over the target a worker also reads less per round (`Partition`), so such
backlogs do not hold its live messages up for a whole large round.

A partition's delay is the 90th percentile of its samples of the last
`WINDOW_S`, or its newest sample when it has none that recent (an overloaded
worker's rounds can outlast the window: its silence must not read as "keeping
up"). The worker's is the largest over its partitions, which share one event
loop. Over the target it claims nothing new, and the unclaimed work stays in
`D(k)` as the group's lag, which autoscalers read.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 0.25  # short, so a worker that caught up claims again before its messages run out
PERCENTILE = 0.9
# How long a verdict is reused: sorting a second of samples per round would cost more than it tells.
VERDICT_TTL_S = 0.05


class Load:
    """The recent own delay of one worker's partitions, as a fraction of its target."""

    def __init__(self, target_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.target_s = target_s
        self._clock = clock
        self._samples: dict[int, deque[tuple[float, float]]] = {}  # per partition: (when, delay s)
        self._fraction = 0.0
        self._fraction_at = -VERDICT_TTL_S

    def record(self, partition: int, delay_s: float) -> None:
        """One write's delay (or 0 for a read that found nothing late)."""
        self._samples.setdefault(partition, deque()).append((self._clock(), delay_s))

    def fraction(self) -> float:
        """The largest partition delay over the target: 0 with no samples, above 1 when over it."""
        now = self._clock()
        if now - self._fraction_at < VERDICT_TTL_S:
            return self._fraction
        self._fraction = max((self._recent(s, now) for s in self._samples.values()), default=0.0)
        self._fraction /= self.target_s
        self._fraction_at = now
        return self._fraction

    def over_target(self) -> bool:
        """Whether the recent delay is past the target."""
        return self.fraction() > 1.0

    @staticmethod
    def _recent(samples: deque[tuple[float, float]], now: float) -> float:
        while len(samples) > 1 and samples[0][0] < now - WINDOW_S:
            samples.popleft()
        delays = sorted(delay for _, delay in samples)
        return delays[min(len(delays) - 1, int(len(delays) * PERCENTILE))] if delays else 0.0
