"""No residue from churn: consumers that own nothing and went idle leave the group, never one that
owns an entry; and a fleet whose workers come and go ends with the group listing the running ones."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from lcstream.streams.frames import MessageAssembler
from lcstream.streams.keys import Keyspace
from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_frames, read_outcome
from lcstream.worker.engine.consumers import IdleConsumers
from lcstream.worker.engine.runner import Worker
from tests.conftest import conformance_cases
from tests.helpers import settings_for, wait_for

GROUP = "workers"
DISPATCH = "test:{0}:dispatch"
PLAIN = next(c for c in conformance_cases() if c["name"] == "plain_text")["events"]


async def _consumers(redis: Redis, dispatch: str = DISPATCH) -> dict[str, int]:
    """Consumer name -> pending entries."""
    return {c["name"].decode(): int(c["pending"]) for c in await redis.xinfo_consumers(dispatch, GROUP)}


async def _group_with(redis: Redis, owners: dict[str, int]) -> None:
    """D(k) with a group whose consumers own `owners[name]` entries each."""
    await redis.xgroup_create(DISPATCH, GROUP, id="0", mkstream=True)
    for name, owned in owners.items():
        await redis.xgroup_createconsumer(DISPATCH, GROUP, name)
        for n in range(owned):
            await redis.xadd(DISPATCH, {"m": f"{name}-{n}"})
        if owned:
            await redis.xreadgroup(GROUP, name, {DISPATCH: ">"}, count=owned)


async def test_a_sweep_removes_idle_consumers_that_own_nothing_and_spares_the_rest(real_redis: Redis) -> None:
    await _group_with(real_redis, {"gone-a": 0, "gone-b": 0, "owner": 2, "me": 0})
    sweeper = IdleConsumers(real_redis, group=GROUP, consumer="me", idle_s=0)
    assert sorted(await sweeper.sweep(DISPATCH)) == ["gone-a", "gone-b"]
    assert await _consumers(real_redis) == {"owner": 2, "me": 0}  # an owner stays, and so does self


async def test_consumers_idle_less_than_the_bound_stay(real_redis: Redis) -> None:
    await _group_with(real_redis, {"recent": 0})
    sweeper = IdleConsumers(real_redis, group=GROUP, consumer="me", idle_s=3600)
    assert await sweeper.sweep(DISPATCH) == []
    assert await _consumers(real_redis) == {"recent": 0}


async def test_an_owner_leaves_only_once_its_entries_were_taken_over(real_redis: Redis) -> None:
    await _group_with(real_redis, {"dead": 1})
    sweeper = IdleConsumers(real_redis, group=GROUP, consumer="peer", idle_s=0)
    assert await sweeper.sweep(DISPATCH) == []
    await real_redis.xautoclaim(DISPATCH, GROUP, "peer", 0, start_id="0-0")
    assert await sweeper.sweep(DISPATCH) == ["dead"]
    assert await _consumers(real_redis) == {"peer": 1}


async def test_leaving_removes_only_this_consumer_and_only_owning_nothing(real_redis: Redis) -> None:
    await _group_with(real_redis, {"me": 1, "other": 0})
    me = IdleConsumers(real_redis, group=GROUP, consumer="me", idle_s=3600)
    assert not await me.leave(DISPATCH)  # it still owns an entry
    pending = await real_redis.xpending_range(DISPATCH, GROUP, min="-", max="+", count=1)
    await real_redis.xack(DISPATCH, GROUP, pending[0]["message_id"])
    assert await me.leave(DISPATCH)
    assert await _consumers(real_redis) == {"other": 0}


# -- a fleet that churns -----------------------------------------------------

SPACE = Keyspace(partitions=2)
CHURN: dict[str, Any] = {
    "partitions": 2,
    "takeover_after_ms": 300,
    "remove_idle_consumers_after_s": 0.5,
    "grace_period_s": 0.2,
}


async def _slow_events(events: list[dict[str, Any]], rng: random.Random) -> AsyncIterator[dict[str, Any]]:
    """A producer streaming with pauses, so messages are open while workers come and go."""
    for event in events:
        if rng.random() < 0.2:
            await asyncio.sleep(rng.uniform(0, 0.02))
        yield event


async def _produce(redis: Redis, names: list[str], stop: asyncio.Event, rng: random.Random) -> None:
    """Producers in 20 lanes, each publishing one message after the other until `stop`."""

    async def lane() -> None:
        while not stop.is_set():
            names.append(message_id := f"churn-{len(names)}")
            await publish_events(redis, _slow_events(PLAIN, rng), message_id=message_id, keyspace=SPACE)

    await asyncio.gather(*(lane() for _ in range(20)))


class Fleet:
    """In-process workers, each with a consumer name of its own, started and stopped or killed."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self.running: dict[str, tuple[Worker, asyncio.Task[Any]]] = {}
        self.ever: list[Worker] = []

    def start(self, name: str) -> Worker:
        worker = Worker(self._redis, settings_for(consumer=name, **CHURN))
        self.running[name] = (worker, asyncio.create_task(worker.run()))
        self.ever.append(worker)
        return worker

    async def stop(self, name: str, *, kill: bool) -> None:
        """A graceful stop (hands back, leaves the group) or a kill (its entries stay owned)."""
        worker, task = self.running.pop(name)
        if kill:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        else:
            worker.stop()
            await task


async def test_after_twenty_workers_came_and_went_the_group_lists_the_running_ones_and_nothing_was_lost(
    real_redis: Redis,
) -> None:
    rng = random.Random(16)
    fleet, stop = Fleet(real_redis), asyncio.Event()
    names: list[str] = []
    fleet.start("steady-a")
    producer = asyncio.create_task(_produce(real_redis, names, stop, rng))
    for cycle in range(20):
        worker = fleet.start(f"cycle-{cycle}")

        async def took_work(w: Worker = worker) -> bool:
            return w.open_messages > 0

        await wait_for(took_work, timeout_s=10, what=f"cycle-{cycle} to take work")
        await fleet.stop(f"cycle-{cycle}", kill=cycle % 2 == 1)
    fleet.start("steady-b")

    async def only_running_listed() -> bool:
        listed = [set(await _consumers(real_redis, d)) for d in SPACE.all_dispatch()]
        return all(names_ == set(fleet.running) for names_ in listed)

    async def all_ended() -> bool:
        return all([await real_redis.exists(SPACE.message(m).result) for m in names])

    try:  # under load, so running workers keep getting messages (Redis 7.0 counts idle from those)
        await wait_for(only_running_listed, timeout_s=30, what="the group to list the running workers")
        stop.set()
        await producer
        await wait_for(all_ended, timeout_s=60, what="every message to end")
    finally:
        stop.set()
        for name in list(fleet.running):
            await fleet.stop(name, kill=False)
    for message_id in names:
        outcome = await read_outcome(real_redis, message_id, SPACE)
        assert outcome is not None and outcome.status == "completed", message_id
        expected = MessageAssembler(message_id).feed_all(PLAIN)
        assert await read_frames(real_redis, message_id, SPACE) == expected, message_id  # none twice
    assert await real_redis.xlen(SPACE.dead) == 0
    assert sum(w.stats.taken_over for w in fleet.ever) > 0  # killed workers left entries behind
    assert len(names) >= 20
