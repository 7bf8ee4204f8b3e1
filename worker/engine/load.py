"""A worker's own delay against its target: whether it keeps up, and so whether it takes new messages.

Every write records one sample: how long the message that waited longest in it
took from its newest event (or from its claim, when the event is older) to its
frames published. Counting from the claim keeps a backlog out of the figure:
events that waited in `E(M)` before any worker held the message are lag, not
this worker's slowness. The worker is over its target while the 90th
percentile of the last second's samples is; it then claims nothing new and the
unclaimed work stays in `D(k)` as the group's lag, which autoscalers read.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 1.0
PERCENTILE = 0.9
# How long a verdict is reused: sorting a second of samples per round would cost more than it tells.
VERDICT_TTL_S = 0.05


class Load:
    """The recent own-delay of one worker, and the fraction of its target it uses."""

    def __init__(self, target_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.target_s = target_s
        self._clock = clock
        self._samples: deque[tuple[float, float]] = deque()  # (when, delay s), oldest first
        self._fraction = 0.0
        self._fraction_at = -VERDICT_TTL_S

    def record(self, delay_s: float) -> None:
        """One write's delay."""
        self._samples.append((self._clock(), delay_s))

    def fraction(self) -> float:
        """The last second's 90th-percentile delay over the target: 0 with no samples, above 1 when
        over it."""
        now = self._clock()
        if now - self._fraction_at < VERDICT_TTL_S:
            return self._fraction
        samples = self._samples
        while samples and samples[0][0] < now - WINDOW_S:
            samples.popleft()
        delays = sorted(delay for _, delay in samples)
        recent = delays[min(len(delays) - 1, int(len(delays) * PERCENTILE))] if delays else 0.0
        self._fraction, self._fraction_at = recent / self.target_s, now
        return self._fraction

    def over_target(self) -> bool:
        """Whether the recent delay is past the target."""
        return self.fraction() > 1.0
