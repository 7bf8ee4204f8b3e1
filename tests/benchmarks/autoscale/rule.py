"""KEDA's ScaledObject and the HPA it drives, as one pure rule: replicas from metrics, times passed in.

It follows the Kubernetes HPA controller (`pkg/controller/podautoscaler`) for a
KEDA ScaledObject of redis-streams triggers (`lagCount`, an external metric
of target type AverageValue) and a cpu trigger (Utilization):

- lag trigger k: `ceil(lag_k / lagCount)`, and cpu: `ceil(ready x avg_util / target)`;
  either keeps the current count while its usage ratio is within the tolerance
  (HPA applies the 10% tolerance to AverageValue external metrics too).
  Workers not ready yet count as 0% when the cpu ratio asks for more, else are left out.
- The lag triggers are inactive while every `lag_k < activationLagCount`
  (KEDA's activation): they contribute nothing. The largest ask wins.
- Stabilization: the result is kept between the lowest recommendation of the
  scale-up window and the highest of the scale-down window.
- Policies: at most `max(+100%, +4 pods)` per 15 s up (HPA's defaults) and
  `1 pod per 60 s` down (keda.yaml), counted from the scale events of each
  policy's period; then clamped to [min, max].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

TOLERANCE = 0.1


@dataclass(frozen=True)
class Policy:
    """An HPA scaling policy: `value` pods or percent per `period_s`."""

    kind: Literal["Pods", "Percent"]
    value: int
    period_s: float


@dataclass(frozen=True)
class Rules:
    """One direction's behavior: stabilization window and policies (the largest change wins)."""

    window_s: float
    policies: tuple[Policy, ...]


# HPA's defaults for scaling up: no window, double or add 4 pods per 15 s, whichever is more.
DEFAULT_SCALE_UP = Rules(0.0, (Policy("Percent", 100, 15.0), Policy("Pods", 4, 15.0)))


@dataclass(frozen=True)
class Spec:
    """What the ScaledObject says (times possibly compressed)."""

    lag_count: int
    activation_lag_count: int
    cpu_target: float  # percent of the requested CPU
    min_replicas: int
    max_replicas: int
    scale_down: Rules
    scale_up: Rules = DEFAULT_SCALE_UP
    tolerance: float = TOLERANCE


@dataclass(frozen=True)
class Metrics:
    """One reading: each partition's lag (None when Redis can't tell) and each current worker's CPU
    utilization in percent of one core (None while it is not ready)."""

    lags: Sequence[int | None]
    cpu: Sequence[float | None]


@dataclass(frozen=True)
class Decision:
    """What one evaluation asked for: per trigger, the raw maximum, after stabilization, the result."""

    lag_asks: tuple[int | None, ...]
    cpu_ask: int | None
    raw: int
    stabilized: int
    replicas: int


def lag_replicas(lag: int, lag_count: int, current: int, tolerance: float = TOLERANCE) -> int:
    """An AverageValue external metric: `ceil(lag / lagCount)`, or `current` within the tolerance."""
    if current > 0 and abs(1.0 - lag / (lag_count * current)) <= tolerance:
        return current
    return math.ceil(lag / lag_count)


def cpu_replicas(
    current: int, utilization: Sequence[float | None], target: float, tolerance: float = TOLERANCE
) -> int | None:
    """The cpu trigger (HPA's `GetResourceReplicas`); None when no worker is ready (no metric)."""
    ready = [u for u in utilization if u is not None]
    if not ready:
        return None
    ratio = sum(ready) / len(ready) / target
    unready = len(utilization) - len(ready)
    if unready == 0 or ratio <= 1.0:  # not-ready workers only count against a scale-up, at 0%
        return current if abs(1.0 - ratio) <= tolerance else math.ceil(ratio * len(ready))
    counted = len(ready) + unready
    new_ratio = sum(ready) / counted / target
    if abs(1.0 - new_ratio) <= tolerance or new_ratio < 1.0:
        return current
    wanted = math.ceil(new_ratio * counted)
    return current if wanted < current else wanted


@dataclass
class Autoscaler:
    """HPA's state for one target: timestamped recommendations and scale events."""

    spec: Spec
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    events: list[tuple[float, int]] = field(default_factory=list)  # (time, +added / -removed)

    def decide(self, now_s: float, current: int, metrics: Metrics) -> Decision:
        """The replicas to run now; records the raw recommendation (not a scale event: see `scaled`)."""
        spec = self.spec
        active = any(lag is not None and lag >= spec.activation_lag_count for lag in metrics.lags)
        lag_asks = tuple(
            lag_replicas(lag, spec.lag_count, current, spec.tolerance) if active and lag is not None else None
            for lag in metrics.lags
        )
        cpu_ask = cpu_replicas(current, metrics.cpu, spec.cpu_target, spec.tolerance)
        asks = [ask for ask in (*lag_asks, cpu_ask) if ask is not None]
        raw = max(asks) if asks else current
        stabilized = self._stabilize(now_s, current, raw)
        replicas = self._limit(now_s, current, stabilized)
        return Decision(lag_asks, cpu_ask, raw, stabilized, replicas)

    def scaled(self, now_s: float, old: int, new: int) -> None:
        """Record a scale event (HPA stores one per rescale); the policies count them."""
        if new != old:
            self.events.append((now_s, new - old))
        longest = max(p.period_s for p in (*self.spec.scale_up.policies, *self.spec.scale_down.policies))
        self.events = [(t, change) for t, change in self.events if t > now_s - longest]

    def _stabilize(self, now_s: float, current: int, raw: int) -> int:
        up_cutoff = now_s - self.spec.scale_up.window_s
        down_cutoff = now_s - self.spec.scale_down.window_s
        up, down = raw, raw
        for t, recommendation in self.recommendations:
            if t > up_cutoff:
                up = min(up, recommendation)
            if t > down_cutoff:
                down = max(down, recommendation)
        oldest = min(up_cutoff, down_cutoff)
        self.recommendations = [(t, r) for t, r in self.recommendations if t >= oldest]
        self.recommendations.append((now_s, raw))
        return min(max(current, up), down)

    def _changed_within(self, now_s: float, period_s: float) -> tuple[int, int]:
        """Pods added and removed by scale events within the last `period_s`."""
        recent = [change for t, change in self.events if t > now_s - period_s]
        return sum(c for c in recent if c > 0), -sum(c for c in recent if c < 0)

    def _limit(self, now_s: float, current: int, desired: int) -> int:
        spec = self.spec
        if desired > current:
            limit = -math.inf
            for policy in spec.scale_up.policies:
                added, removed = self._changed_within(now_s, policy.period_s)
                start = current - added + removed
                step = start + policy.value if policy.kind == "Pods" else start * (1 + policy.value / 100)
                limit = max(limit, math.ceil(step))
            return min(desired, spec.max_replicas, max(current, int(limit)))
        if desired < current:
            floor = math.inf
            for policy in spec.scale_down.policies:
                added, removed = self._changed_within(now_s, policy.period_s)
                start = current + removed - added
                step = start - policy.value if policy.kind == "Pods" else start * (1 - policy.value / 100)
                floor = min(floor, int(step))
            return max(desired, spec.min_replicas, min(current, int(floor)))
        return min(max(desired, spec.min_replicas), spec.max_replicas)
