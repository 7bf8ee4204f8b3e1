"""The fleet's rates and delay quantiles from the workers' published figures (no Redis)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from lcstream.worker.engine.figures import bucket_counts
from lcstream.worker.gateway import fleet
from lcstream.worker.gateway.fleet import FleetFigures, parse_figures, quantile
from lcstream.worker.observability.figures import WorkerFigures
from lcstream.worker.observability.registry import DELAY_BUCKETS_S

BOUNDS: list[float | None] = [*DELAY_BUCKETS_S, None]


def figures(
    name: str, time_ms: int, *, events: int = 0, ended: dict[str, int] | None = None,
    delays: tuple[float, ...] = (), pid: int = 1, stopping: bool = False,
) -> WorkerFigures:  # fmt: skip
    _, counts = bucket_counts(_observed(delays))
    return WorkerFigures(
        consumer=name, host="h", pid=pid, started_ms=0, time_ms=time_ms, stopping=stopping,
        open_messages=0, events=events, frames=events, ended=ended or {},
        delay_le=BOUNDS, delay_counts=counts,
    )  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=40.0, allow_nan=False), min_size=1, max_size=300),
       st.sampled_from([0.5, 0.9, 0.99]))  # fmt: skip
def test_a_quantile_lies_in_the_bucket_that_holds_the_true_one(delays: list[float], q: float) -> None:
    _, counts = bucket_counts(_observed(delays))
    estimate = quantile(q, BOUNDS, counts)
    true = sorted(delays)[math.ceil(q * len(delays)) - 1]  # the value of rank q n, as the estimate ranks
    finite = [b for b in BOUNDS if b is not None]
    upper = next((b for b in finite if true <= b), finite[-1])
    lower = max((b for b in finite if b < true), default=0.0)
    assert estimate is not None
    assert lower <= estimate <= upper, (estimate, true)


def _observed(delays: list[float] | tuple[float, ...]) -> Histogram:
    histogram = Histogram("d", "d", buckets=DELAY_BUCKETS_S, registry=CollectorRegistry())
    for delay in delays:
        histogram.observe(delay)
    return histogram


def test_an_empty_histogram_has_no_quantile() -> None:
    assert quantile(0.5, BOUNDS, [0] * len(BOUNDS)) is None


def test_rates_sum_running_workers_over_their_own_intervals() -> None:
    heard = FleetFigures()
    heard.update({"a": figures("a", 10_000, events=100), "b": figures("b", 50_000, events=7)})
    assert heard.rates(1.0)["events_per_s"] == 0  # one publication each: no rate yet
    delays = (0.003,) * 98 + (0.2, 0.2)
    heard.update({
        "a": figures("a", 12_000, events=500, ended={"completed": 4}, delays=delays),  # 2 s later
        "b": figures("b", 50_500, events=57, ended={"failed:idle_timeout": 1}),  # 0.5 s later
    })  # fmt: skip
    rates = heard.rates(1.0)
    assert rates["events_per_s"] == pytest.approx(400 / 2 + 50 / 0.5)
    assert rates["ended_per_s"] == {"completed": 2.0, "failed:idle_timeout": 2.0}
    assert 0.002 <= rates["delay_p50_s"] <= 0.005 and 0.1 <= rates["delay_p99_s"] <= 0.25


def test_a_restarted_worker_gives_no_rate_until_it_publishes_twice() -> None:
    heard = FleetFigures()
    heard.update({"a": figures("a", 1_000, events=900)})
    heard.update({"a": figures("a", 2_000, events=10, pid=2)})  # counters started over
    assert heard.rates(1.0)["events_per_s"] == 0
    heard.update({"a": figures("a", 3_000, events=110, pid=2)})
    assert heard.rates(1.0)["events_per_s"] == 100


def test_a_silent_or_stopping_worker_is_not_running_and_not_counted() -> None:
    clock = [1000.0]
    heard = FleetFigures(clock=lambda: clock[0])
    heard.update({"a": figures("a", 1_000), "b": figures("b", 1_000)})
    heard.update({"a": figures("a", 2_000, events=10), "b": figures("b", 2_000, events=10, stopping=True)})
    assert heard.running("a") and not heard.running("b")
    assert heard.rates(1.0)["events_per_s"] == 10
    clock[0] += fleet.SILENT_AFTER_S + 1  # a publishes nothing new
    heard.update({"a": figures("a", 2_000, events=10)})
    assert not heard.running("a") and heard.rates(1.0)["events_per_s"] == 0


def test_fields_that_are_not_figures_are_left_out() -> None:
    good = figures("a", 5).model_dump_json().encode()
    broken = figures("b", 5).model_dump() | {"delay_counts": [1]}
    raw = {b"a": good, b"b": repr(broken).encode(), b"c": b"not json", b"d": b'{"time_ms": "soon"}'}
    assert set(parse_figures(raw)) == {"a"}


def test_rates_of_many_random_workers_equal_the_sum_of_their_own() -> None:
    rng = random.Random(7)
    heard, expected = FleetFigures(), 0.0
    first, second = {}, {}
    for i in range(20):
        name, t0, step_ms = f"w{i}", rng.randrange(10**6), rng.randrange(200, 3000)
        e0, grown = rng.randrange(10**6), rng.randrange(10**4)
        first[name] = figures(name, t0, events=e0)
        second[name] = figures(name, t0 + step_ms, events=e0 + grown)
        expected += grown / (step_ms / 1000)
    heard.update(first)
    heard.update(second)
    assert heard.rates(1.0)["events_per_s"] == pytest.approx(expected, abs=0.02)


def test_a_rate_spans_about_the_window_asked_for_not_just_the_last_publication() -> None:
    heard = FleetFigures()
    for t in range(0, 2001, 100):  # a publication every 100 ms; 100 events arrive in the last one
        heard.update({"a": figures("a", t, events=100 if t == 2000 else 0)})
    assert heard.rates(1.0)["events_per_s"] == 100  # 100 events over the last second
    assert heard.rates(0.1)["events_per_s"] == 1000  # ... or over the last 100 ms
    assert heard.rates(60.0)["events_per_s"] == 50  # back to the oldest kept: 100 over 2 s
