"""Load-aware intake: a worker over its delay target claims nothing new, so the work waits as lag for
a peer; under it, a worker claims in steps that shrink as it fills up."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from lcstream.streams.keys import Keyspace
from lcstream.streams.publish import publish_events
from lcstream.worker.engine.load import WINDOW_S, Load
from lcstream.worker.engine.partition import Partition
from lcstream.worker.engine.runner import Worker
from tests.conftest import conformance_cases
from tests.helpers import all_outcomes, running_worker, settings_for, wait_for

SPACE = Keyspace(partitions=1)
PLAIN = next(c for c in conformance_cases() if c["name"] == "plain_text")["events"]
TARGET_S = 0.05


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_load_is_the_recent_90th_percentile_delay_over_the_target() -> None:
    clock = Clock()
    load = Load(TARGET_S, clock=clock)
    assert load.fraction() == 0.0 and not load.over_target()
    for delay_ms in range(1, 101):  # 1 .. 100 ms: the 90th percentile is 91 ms
        load.record(0, delay_ms / 1000)
    clock.now += WINDOW_S / 2  # past the cached verdict, still within the window
    assert load.fraction() == pytest.approx(0.091 / TARGET_S)
    assert load.over_target()


def test_samples_older_than_the_window_no_longer_count() -> None:
    clock = Clock()
    load = Load(TARGET_S, clock=clock)
    load.record(0, 10.0)
    assert load.over_target()
    clock.now += WINDOW_S + 0.01
    load.record(0, 0.01)
    assert load.fraction() == pytest.approx(0.01 / TARGET_S)
    assert not load.over_target()


def test_a_partition_silent_for_longer_than_the_window_keeps_its_newest_sample() -> None:
    """An overloaded worker's rounds can outlast the window: its silence must not read as keeping up."""
    clock = Clock()
    load = Load(TARGET_S, clock=clock)
    load.record(0, 0.001)
    load.record(0, 3.0)
    clock.now += 5 * WINDOW_S
    assert load.fraction() == pytest.approx(3.0 / TARGET_S)


def test_the_worker_is_as_late_as_its_latest_partition() -> None:
    clock = Clock()
    load = Load(TARGET_S, clock=clock)
    for _ in range(50):
        load.record(0, 0.0)  # an idle partition reads nothing late ...
    load.record(1, 2 * TARGET_S)  # ... beside one that is behind, on the same event loop
    assert load.fraction() == pytest.approx(2.0)


def _names(count: int, tag: str) -> list[str]:
    return [f"{tag}-{n}" for n in range(count)]


async def _partition(redis: Redis, consumer: str, **settings: Any) -> tuple[Worker, Partition]:
    worker = Worker(redis, settings_for(consumer=consumer, partitions=1, **settings))
    await worker._ensure_groups()
    return worker, Partition(worker.state, 0, await worker.link_for(0))


async def _lag(redis: Redis) -> tuple[int, int]:
    """(lag, pending) of the group on D(0)."""
    (group,) = await redis.xinfo_groups(SPACE.dispatch(0))
    return int(group["lag"]), int(group["pending"])


async def test_a_worker_over_its_target_leaves_new_messages_as_lag_and_a_joining_worker_takes_them(
    real_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, partition = await _partition(real_redis, "busy", target_delay_ms=int(TARGET_S * 1000))
    await publish_events(real_redis, PLAIN[:3], message_id="streaming", keyspace=SPACE)  # stays open
    while not partition.held.open:
        assert await partition.round()
    late = [4.0]  # its delay, as a fraction of the target (Load is tested above)
    monkeypatch.setattr(worker.state.load, "fraction", lambda: late[0])

    waiting = _names(5, "waiting")
    for message_id in waiting:
        await publish_events(real_redis, PLAIN, message_id=message_id, keyspace=SPACE)
    for _ in range(10):
        assert await partition.round()
    assert await _lag(real_redis) == (5, 1)  # nothing new claimed: five wait, its own one is pending
    assert list(partition.held.open) == [SPACE.message("streaming").events.encode()]

    async with running_worker(real_redis, consumer="joined", partitions=1) as joined:
        await wait_for(lambda: all_outcomes(real_redis, waiting, SPACE), timeout_s=20, what="the peer")
        assert joined.stats.completed == 5

    late[0] = 0.5  # its delay is back under the target: it claims again
    await publish_events(real_redis, PLAIN, message_id="after", keyspace=SPACE)
    for _ in range(20):
        if await all_outcomes(real_redis, ["after"], SPACE):
            break
        assert await partition.round()
    assert await all_outcomes(real_redis, ["after"], SPACE)
    assert worker.stats.completed == 1


async def test_the_claim_step_shrinks_as_the_worker_fills_up_and_nears_its_target(real_redis: Redis) -> None:
    worker, partition = await _partition(real_redis, "filling", claim_count=10, max_open_messages=20)
    state = worker.state
    for message_id in _names(10, "open"):
        await publish_events(real_redis, PLAIN[:3], message_id=message_id, keyspace=SPACE)
    while len(partition.held.open) < 10:
        assert await partition.round()
    clock = Clock()
    state.load = Load(state.settings.target_delay_ms / 1000, clock=clock)

    def step(*, new: bool) -> int:
        want = state.reserve_capacity(new=new)
        state.settle_capacity(want)
        return want

    assert step(new=True) == 5  # half full: half a step
    assert step(new=False) == 10  # own pending or abandoned entries: not shrunk
    state.load.record(0, 0.8 * state.load.target_s)
    clock.now += WINDOW_S / 2
    assert step(new=True) == 2  # 80% of the target: ceil(10 x 0.2)
    state.load.record(0, 2 * state.load.target_s)
    clock.now += WINDOW_S / 4
    assert step(new=True) == 0  # over the target
    assert step(new=False) == 10


LONG = next(c for c in conformance_cases() if c["name"] == "long_text_2000_tokens")["events"]


async def test_a_message_claimed_with_a_backlog_counts_no_delay_until_its_backlog_is_read(
    real_redis: Redis,
) -> None:
    """Reading what waited before the claim is throughput, not lateness: the own delay of a message
    starts once a read left none of its events waiting."""
    _, partition = await _partition(real_redis, "catching-up", read_count=500)
    await publish_events(real_redis, LONG, message_id="backlog", keyspace=SPACE)
    key = SPACE.message("backlog").events.encode()
    while key not in partition.held.open:
        assert await partition.round()
    handler = partition.held.open[key]
    rounds = 0
    while handler.behind or handler.caught_up_at is None:
        assert handler.caught_up_at is None  # still reading its backlog
        assert await partition.round()
        rounds += 1
    assert rounds >= len(LONG) // 500  # it took several reads of at most 500 events
    assert handler.caught_up_at is not None


async def test_over_its_target_a_worker_reads_less_per_round(
    real_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its rounds are too long: a backlog it claimed must not keep its live messages waiting a whole
    large round."""
    worker, partition = await _partition(real_redis, "slow", read_count=400)
    await publish_events(real_redis, LONG, message_id="backlog", keyspace=SPACE)
    wire = partition._wire
    read = wire.xread
    asked: list[int] = []  # events one read may return in all

    async def recording_xread(streams: Any, *, count: int, block_ms: int | None) -> Any:
        asked.append(count * len(streams))
        return await read(streams, count=count, block_ms=block_ms)

    monkeypatch.setattr(wire, "xread", recording_xread)
    late = [1.0]
    monkeypatch.setattr(worker.state.load, "fraction", lambda: late[0])
    for _ in range(3):
        assert await partition.round()
    late[0] = 4.0
    for _ in range(3):
        assert await partition.round()
    assert await real_redis.exists(SPACE.message("backlog").result) == 0  # still reading it
    assert max(asked[:3]) > 200 and max(asked[3:]) <= 100
