"""The arrival rate over time: a piecewise-linear profile of (time s, messages/s) points.

Message n arrives when the integral of the rate reaches n + 1/2: arrivals are
evenly spread at the current rate, with no randomness, so both scenarios see
exactly the same traffic.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass

# Low, rising to about 1.6x what one 0.4-core worker keeps under its target (lag from ~115 messages/s of
# 150 tokens at 50/s), a plateau, falling back to low for long enough to scale down: 170 s.
DEFAULT_PROFILE = "0:30,15:30,35:180,80:180,100:30,170:30"


@dataclass(frozen=True)
class RateProfile:
    """`points`: (time s, messages/s), times increasing from 0; the rate is 0 after the last point."""

    points: tuple[tuple[float, float], ...]

    @classmethod
    def parse(cls, text: str) -> RateProfile:
        """`"0:5,20:5,50:60"`: comma-separated `time:rate` pairs."""
        points = []
        for pair in text.split(","):
            t, sep, rate = pair.strip().partition(":")
            if not sep:
                raise ValueError(f"expected time:rate, got {pair!r}")
            points.append((float(t), float(rate)))
        profile = cls(tuple(points))
        times = [t for t, _ in points]
        if len(points) < 2 or times[0] != 0 or times != sorted(set(times)):
            raise ValueError(f"need at least two points with times increasing from 0: {text!r}")
        if any(rate < 0 for _, rate in points):
            raise ValueError(f"rates must not be negative: {text!r}")
        return profile

    def __str__(self) -> str:
        return ",".join(f"{t:g}:{rate:g}" for t, rate in self.points)

    @property
    def duration_s(self) -> float:
        return self.points[-1][0]

    def stretched(self, duration_s: float) -> RateProfile:
        """The same shape over `duration_s` (the rates unchanged)."""
        factor = duration_s / self.duration_s
        return RateProfile(tuple((t * factor, rate) for t, rate in self.points))

    def rate(self, t: float) -> float:
        """Messages/s at `t`."""
        if t < 0 or t > self.duration_s:
            return 0.0
        for (t0, r0), (t1, r1) in itertools.pairwise(self.points):
            if t <= t1:
                return r0 + (r1 - r0) * (t - t0) / (t1 - t0)
        return self.points[-1][1]

    def arrivals(self) -> list[float]:
        """Every message's arrival time, in order."""
        found: list[float] = []
        arrived = 0.0  # the integral of the rate up to the current segment's start
        for (t0, r0), (t1, r1) in itertools.pairwise(self.points):
            slope = (r1 - r0) / (t1 - t0)
            total = arrived + (r0 + r1) / 2 * (t1 - t0)
            while len(found) + 0.5 <= total:
                need = len(found) + 0.5 - arrived
                if slope == 0:
                    tau = need / r0
                else:  # r0 τ + slope τ²/2 = need
                    tau = (-r0 + math.sqrt(max(0.0, r0 * r0 + 2 * slope * need))) / slope
                found.append(min(t1, t0 + tau))
            arrived = total
        return found


def streaming(arrivals: list[float], t: float, message_s: float) -> int:
    """How many messages are streaming tokens at `t` (arrived within the last `message_s`)."""
    return bisect.bisect_right(arrivals, t) - bisect.bisect_right(arrivals, t - message_s)
