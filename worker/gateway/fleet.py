"""The fleet's rates and delay quantiles, from the figures workers publish in `P:workers`.

Each worker's counters are cumulative since it started; a rate is the change
between its latest publication and the one about a sample interval before it,
over the time between them (the worker's own clock, so machines need not agree
on the time). The fleet's rate is the sum over
workers heard from recently; its delay quantiles come from the sum of their
histogram buckets' changes, interpolated within a bucket as Prometheus's
`histogram_quantile` does.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from lcstream.worker.observability.figures import WorkerFigures

# A worker whose figures did not change for this long (gateway time) is no longer counted as running.
SILENT_AFTER_S = 5.0
HISTORY = 64  # publications kept per worker: a rate's window reaches this far back at most


def quantile(q: float, bounds: Sequence[float | None], counts: Sequence[int]) -> float | None:
    """The q-quantile of a histogram's cumulative bucket `counts` (`bounds`: upper bounds, None for
    +Inf), or None when it holds nothing. A quantile in the +Inf bucket is the largest finite bound."""
    total = counts[-1] if counts else 0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= rank:
            if bound is None:
                return lower
            in_bucket = cumulative - below
            return lower + (bound - lower) * ((rank - below) / in_bucket if in_bucket else 1.0)
        lower, below = (bound if bound is not None else lower), cumulative
    return lower


def parse_figures(raw: Mapping[bytes, bytes]) -> dict[str, WorkerFigures]:
    """`P:workers` as read (HGETALL), by consumer; fields that are not figures are left out."""
    parsed: dict[str, WorkerFigures] = {}
    for name, value in raw.items():
        try:
            parsed[name.decode(errors="replace")] = WorkerFigures.model_validate_json(value)
        except ValidationError:
            continue
    return parsed


@dataclass(slots=True)
class _Heard:
    history: deque[WorkerFigures]  # the worker's recent publications since it started, oldest first
    changed_at: float  # when the gateway last saw a new one (its clock)

    @property
    def latest(self) -> WorkerFigures:
        return self.history[-1]

    def since(self, window_ms: int) -> WorkerFigures | None:
        """The publication to take a rate from: the newest at least `window_ms` before the latest, or
        the oldest kept (a shorter span); None with a single publication."""
        if len(self.history) < 2:
            return None
        start = self.latest.time_ms - window_ms
        return next((f for f in reversed(self.history) if f.time_ms <= start), self.history[0])


def _restarted(before: WorkerFigures, after: WorkerFigures) -> bool:
    return (before.started_ms, before.pid, before.delay_le) != (after.started_ms, after.pid, after.delay_le)


class FleetFigures:
    """What the gateway heard from each worker, and the fleet's rates from it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._heard: dict[str, _Heard] = {}
        self._clock = clock

    def update(self, figures: Mapping[str, WorkerFigures]) -> None:
        """Take a fresh read of `P:workers`."""
        now = self._clock()
        for name in set(self._heard) - set(figures):
            del self._heard[name]
        for name, latest in figures.items():
            heard = self._heard.get(name)
            if heard is None or _restarted(heard.latest, latest):
                self._heard[name] = _Heard(deque([latest], maxlen=HISTORY), now)
            elif latest.time_ms != heard.latest.time_ms:
                heard.history.append(latest)
                heard.changed_at = now

    def running(self, name: str) -> bool:
        """Whether worker `name` publishes its figures and is not stopping."""
        heard = self._heard.get(name)
        return (
            heard is not None
            and self._clock() - heard.changed_at < SILENT_AFTER_S
            and not heard.latest.stopping
        )

    def latest(self, name: str) -> WorkerFigures | None:
        """Worker `name`'s last published figures."""
        heard = self._heard.get(name)
        return heard.latest if heard is not None else None

    def names(self) -> list[str]:
        """Every worker with figures in `P:workers`."""
        return sorted(self._heard)

    def rates(self, window_s: float) -> dict[str, Any]:
        """Events/s, frames/s, messages ended/s by outcome, and the delay's p50/p99 (seconds) of the
        fleet, each running worker's over about its last `window_s` (the gateway's sample interval)."""
        events = frames = 0.0
        ended: dict[str, float] = {}
        buckets: list[int] = []
        bounds: list[float | None] = []
        for name, heard in self._heard.items():
            before, after = heard.since(int(window_s * 1000)), heard.latest
            if before is None or not self.running(name) or after.time_ms <= before.time_ms:
                continue
            elapsed_s = (after.time_ms - before.time_ms) / 1000
            events += max(0, after.events - before.events) / elapsed_s
            frames += max(0, after.frames - before.frames) / elapsed_s
            for outcome, count in after.ended.items():
                grown = max(0, count - before.ended.get(outcome, 0))
                ended[outcome] = ended.get(outcome, 0.0) + grown / elapsed_s
            counts = [max(0, a - b) for a, b in zip(after.delay_counts, before.delay_counts, strict=True)]
            if not buckets:
                buckets, bounds = counts, after.delay_le
            elif after.delay_le == bounds:  # a worker of another version may bucket differently
                buckets = [a + b for a, b in zip(buckets, counts, strict=True)]
        return {
            "events_per_s": round(events, 3),
            "frames_per_s": round(frames, 3),
            "ended_per_s": {outcome: round(rate, 3) for outcome, rate in sorted(ended.items())},
            "delay_p50_s": quantile(0.5, bounds, buckets),
            "delay_p99_s": quantile(0.99, bounds, buckets),
        }
