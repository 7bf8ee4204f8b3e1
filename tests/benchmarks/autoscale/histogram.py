"""Delay histograms with log buckets (about 2.5% wide): small enough to write every second, mergeable.

Bucket b holds delays in [GROWTH^b, GROWTH^(b+1)) µs; a percentile is read as its
bucket's geometric middle, within about 1.3% of the exact sample.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

GROWTH = 1.025
_LOG_GROWTH = math.log(GROWTH)


def bucket(delay_us: float) -> int:
    """The bucket of a delay (anything under 1 µs counts as 1 µs)."""
    return int(math.log(max(1.0, delay_us)) / _LOG_GROWTH)


def merge(histograms: Iterable[Mapping[int, int]]) -> Counter[int]:
    """The sum of several histograms."""
    total: Counter[int] = Counter()
    for histogram in histograms:
        total.update(histogram)
    return total


def percentile_ms(histogram: Mapping[int, int], fraction: float) -> float | None:
    """Nearest-rank percentile in ms (`fraction` 0.99 for p99); None when empty."""
    count = sum(histogram.values())
    if count == 0:
        return None
    rank = max(1, math.ceil(fraction * count))
    seen = 0
    for b in sorted(histogram):
        seen += histogram[b]
        if seen >= rank:
            return round(float(GROWTH ** (b + 0.5)) / 1000, 3)
    raise AssertionError("unreachable: the ranks add up to the count")


def from_json(raw: Mapping[str, int]) -> dict[int, int]:
    """A histogram read back from JSON (whose keys are strings)."""
    return {int(b): n for b, n in raw.items()}
