"""The KEDA/HPA rule of the autoscaling simulation (tests/benchmarks/autoscale/rule.py): pure, times given."""

from __future__ import annotations

import pytest

from tests.benchmarks.autoscale.rule import (
    DEFAULT_SCALE_UP,
    Autoscaler,
    Metrics,
    Policy,
    Rules,
    Spec,
    cpu_replicas,
    lag_replicas,
)

# A spec of keda.yaml's shape, in real seconds (the numbers are this test's own).
SPEC = Spec(
    lag_count=50,
    activation_lag_count=1,
    cpu_target=75.0,
    min_replicas=1,
    max_replicas=10,
    scale_down=Rules(300.0, (Policy("Pods", 1, 60.0),)),
)


def idle(workers: int) -> Metrics:
    return Metrics(lags=(0, 0, 0, 0), cpu=(10.0,) * workers)


def test_lag_asks_for_one_worker_per_lag_count_outside_the_tolerance() -> None:
    assert lag_replicas(120, 50, current=1) == 3
    assert lag_replicas(0, 50, current=3) == 0
    assert lag_replicas(105, 50, current=2) == 2  # 1.05 of the target per worker: within 10%
    assert lag_replicas(115, 50, current=2) == 3


def test_cpu_scales_by_the_utilization_ratio_outside_the_tolerance() -> None:
    assert cpu_replicas(2, [80.0, 70.0], 75.0) == 2  # ratio 1.0
    assert cpu_replicas(2, [150.0, 150.0], 75.0) == 4
    assert cpu_replicas(4, [20.0, 20.0, 20.0, 20.0], 75.0) == 2  # ceil(4 x 20/75)
    assert cpu_replicas(1, [80.0], 75.0) == 1  # 1.067: within 10%
    assert cpu_replicas(1, [None], 75.0) is None  # no ready worker: no metric


def test_workers_not_ready_count_as_idle_against_a_scale_up_only() -> None:
    assert cpu_replicas(3, [150.0, 150.0, None], 75.0) == 4  # 300/3 = 100% of 75: ceil(1.33 x 3)
    assert cpu_replicas(2, [150.0, None], 75.0) == 2  # 150/2 = 75%: no change
    assert cpu_replicas(3, [15.0, 15.0, None], 75.0) == 1  # scaling down: the unready one is left out


def test_the_largest_ask_wins() -> None:
    decision = Autoscaler(SPEC).decide(0.0, 1, Metrics(lags=(120, 10, 0, 0), cpu=(100.0,)))
    assert decision.lag_asks == (3, 1, 0, 0)
    assert decision.cpu_ask == 2
    assert (decision.raw, decision.replicas) == (3, 3)


def test_lag_triggers_below_the_activation_count_contribute_nothing() -> None:
    spec = Spec(50, 20, 75.0, 1, 10, SPEC.scale_down)
    quiet = Autoscaler(spec).decide(0.0, 1, Metrics(lags=(19, 19, 0, 0), cpu=(75.0,)))
    assert quiet.lag_asks == (None, None, None, None)
    assert quiet.replicas == 1
    active = Autoscaler(spec).decide(0.0, 1, Metrics(lags=(20, 130, 0, 0), cpu=(75.0,)))
    assert active.lag_asks == (1, 3, 0, 0)
    assert active.replicas == 3


def test_an_unknown_lag_is_left_out() -> None:
    decision = Autoscaler(SPEC).decide(0.0, 2, Metrics(lags=(None, 160, None, 0), cpu=(75.0, 75.0)))
    assert decision.lag_asks == (None, 4, None, 0)
    assert decision.replicas == 4


def test_scale_up_is_limited_to_doubling_or_four_pods_per_period() -> None:
    scaler = Autoscaler(SPEC)
    flood = Metrics(lags=(1000, 0, 0, 0), cpu=(100.0,))
    first = scaler.decide(0.0, 1, flood)
    assert (first.raw, first.replicas) == (20, 5)  # max(1 x 2, 1 + 4)
    scaler.scaled(0.0, 1, 5)
    flood5 = Metrics(lags=(1000, 0, 0, 0), cpu=(100.0,) * 5)
    assert scaler.decide(10.0, 5, flood5).replicas == 5  # this period already added 4
    assert scaler.decide(15.0, 5, flood5).replicas == 10  # a new period: max(10, 9), capped at max 10


def test_scale_up_period_is_a_parameter() -> None:
    fast = Spec(50, 1, 75.0, 1, 10, SPEC.scale_down, Rules(0.0, (Policy("Pods", 1, 2.0),)))
    scaler = Autoscaler(fast)
    flood = Metrics(lags=(500, 0, 0, 0), cpu=(100.0,))
    assert scaler.decide(0.0, 1, flood).replicas == 2
    scaler.scaled(0.0, 1, 2)
    assert scaler.decide(1.0, 2, flood).replicas == 2
    assert scaler.decide(2.5, 2, flood).replicas == 3


def test_scale_down_waits_for_the_stabilization_window_then_one_pod_per_period() -> None:
    scaler = Autoscaler(SPEC)
    busy = Metrics(lags=(200, 0, 0, 0), cpu=(75.0,) * 4)
    assert scaler.decide(0.0, 4, busy).replicas == 4
    for t in (15.0, 150.0, 299.0):  # the busy recommendation of t=0 is within the last 300 s
        assert scaler.decide(t, 4, idle(4)).replicas == 4
    down = scaler.decide(300.0, 4, idle(4))  # now it is not (HPA keeps those after now - window)
    assert (down.raw, down.stabilized, down.replicas) == (1, 1, 3)  # one pod per 60 s
    scaler.scaled(300.0, 4, 3)
    assert scaler.decide(330.0, 3, idle(3)).replicas == 3
    assert scaler.decide(360.0, 3, idle(3)).replicas == 2  # the event at 300 is out of the 60 s period
    scaler.scaled(360.0, 3, 2)
    assert scaler.decide(420.0, 2, idle(2)).replicas == 1


def test_a_short_burst_inside_the_window_keeps_the_peak() -> None:
    scaler = Autoscaler(SPEC)
    scaler.decide(0.0, 1, idle(1))
    assert scaler.decide(100.0, 3, Metrics(lags=(150, 0, 0, 0), cpu=(75.0,) * 3)).replicas == 3
    assert scaler.decide(200.0, 3, idle(3)).stabilized == 3  # max over the last 300 s
    assert scaler.decide(401.0, 3, idle(3)).stabilized == 1


def test_replicas_stay_between_min_and_max() -> None:
    spec = Spec(50, 1, 75.0, 2, 4, Rules(0.0, (Policy("Percent", 100, 60.0),)), DEFAULT_SCALE_UP)
    scaler = Autoscaler(spec)
    assert scaler.decide(0.0, 2, Metrics(lags=(10_000, 0, 0, 0), cpu=(100.0, 100.0))).replicas == 4
    assert scaler.decide(1.0, 4, idle(4)).replicas == 2  # no window, 100% down allowed: floored at min


@pytest.mark.parametrize(("current", "expected"), [(1, 1), (2, 2), (5, 5)])
def test_no_metric_keeps_the_current_count(current: int, expected: int) -> None:
    metrics = Metrics(lags=(None, None, None, None), cpu=(None,) * current)
    assert Autoscaler(SPEC).decide(0.0, current, metrics).replicas == expected
