"""A partition's rounds driven one at a time, with its write held in flight by a gate around the real one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from lcstream.streams.frames import FrameKind, MessageAssembler
from lcstream.streams.keys import Keyspace
from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_frames, read_outcome
from lcstream.worker.engine.batch import Batch, WriteVerdict
from lcstream.worker.engine.partition import Partition
from lcstream.worker.engine.runner import Worker
from tests.conftest import conformance_cases
from tests.helpers import all_outcomes, in_process_oracle, run_burst, settings_for, wait_for, write_events

CASES = {c["name"]: c for c in conformance_cases()}
LONG = CASES["long_text_2000_tokens"]["events"]
SPACE = Keyspace()
Publish = Callable[[Batch[Any]], Awaitable[list[WriteVerdict]]]


class Gate:
    """Holds every write until `open()`; counts the writes that reached it."""

    def __init__(self) -> None:
        self.reached = 0
        self._open = asyncio.Event()

    def wrap(self, publish: Publish) -> Publish:
        async def gated(batch: Batch[Any]) -> list[WriteVerdict]:
            self.reached += 1
            await self._open.wait()
            return await publish(batch)

        return gated

    def open(self) -> None:
        self._open.set()


async def partition_on(
    redis: Redis, monkeypatch: pytest.MonkeyPatch, gate: Gate, **settings: Any
) -> Partition:
    await redis.xgroup_create(SPACE.dispatch(0), "workers", id="0", mkstream=True)
    worker = Worker(redis, settings_for(**settings))
    link = await worker.link_for(0)
    monkeypatch.setattr(link.publisher, "publish", gate.wrap(link.publisher.publish))
    return Partition(worker.state, 0, link)


async def rounds_until(
    partition: Partition, done: Callable[[], Awaitable[bool]], *, limit: int = 200
) -> None:
    for _ in range(limit):
        await asyncio.sleep(0)  # let a write the last round started reach the gate
        if await done():
            return
        assert await partition.round()
    raise AssertionError(f"not done after {limit} rounds")


async def test_a_message_ending_while_its_previous_write_is_in_flight_keeps_every_frame(
    real_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate()
    half = (len(LONG) + 1) // 2
    # Beside D(k), a read's share is `half`: the first read fills it, so the next reads on while
    # the first read's frames are still being written, and gets the rest, the end included.
    partition = await partition_on(real_redis, monkeypatch, gate, read_count=2 * half)
    await write_events(real_redis, "overlap", LONG[:half], first=1)
    await real_redis.xadd(SPACE.dispatch(0), {"m": "overlap"})

    async def write_in_flight() -> bool:
        return gate.reached == 1

    await rounds_until(partition, write_in_flight)  # the first frames are held in flight
    await write_events(real_redis, "overlap", LONG[half:], first=half + 1)
    next_round = asyncio.create_task(partition.round())  # reads the rest, ends the message, then waits
    handler = partition.held.open[SPACE.message("overlap").events.encode()]

    async def ended_in_memory() -> bool:
        return handler.outcome is not None

    await wait_for(ended_in_memory, timeout_s=10, what="the next round to read the message's end")
    assert await real_redis.exists(SPACE.message("overlap").result) == 0
    gate.open()
    assert await next_round
    await rounds_until(partition, lambda: all_outcomes(real_redis, ["overlap"]))

    expected = await in_process_oracle(LONG, "overlap")
    outcome = await read_outcome(real_redis, "overlap")
    assert outcome is not None and outcome.message == expected["output"]
    assert await read_frames(real_redis, "overlap") == MessageAssembler("overlap").feed_all(LONG)
    assert await partition.round()  # settles the last write: the message is let go
    assert not partition.held.open


async def test_an_event_written_after_the_end_was_read_fails_the_message_at_its_end(
    real_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate()
    partition = await partition_on(real_redis, monkeypatch, gate)
    events = CASES["plain_text"]["events"]
    await publish_events(real_redis, events, message_id="trailing")

    async def ending_in_flight() -> bool:
        return gate.reached >= 1 and not partition.held.dirty and bool(partition.held.open)

    await rounds_until(partition, ending_in_flight)
    await write_events(real_redis, "trailing", [events[-1]], first=len(events) + 1)  # after message-finish
    gate.open()
    await rounds_until(partition, lambda: all_outcomes(real_redis, ["trailing"]))

    outcome = await read_outcome(real_redis, "trailing")
    assert outcome is not None and outcome.error is not None and outcome.error["code"] == "after_terminal"
    frames = await read_frames(real_redis, "trailing")
    before_end = MessageAssembler("trailing").feed_all(events[:-1])  # the end it follows is not taken
    assert frames[:-1] == before_end
    assert frames[-1].seq == len(before_end) + 1 and frames[-1].kind is FrameKind.ERROR
    dead = await real_redis.xrange(SPACE.dead)
    assert [(d[b"m"], d[b"reason"]) for _, d in dead] == [(b"trailing", b"after_terminal")]


async def test_a_failed_write_surfaces_when_every_held_message_has_ended(
    real_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partition is full (one slot) and its one message ended: the write's fault must not wait
    for room that only the write itself would free."""
    await publish_events(real_redis, CASES["plain_text"]["events"], message_id="surfaced")
    worker = Worker(real_redis, settings_for(max_open_messages=1))
    link = await worker.link_for(0)
    publish = link.publisher.publish
    faults: list[Batch[Any]] = []

    async def once_broken(batch: Batch[Any]) -> list[WriteVerdict]:
        if not faults and any(w.ending for w in batch.writes):
            faults.append(batch)
            raise RedisConnectionError("connection lost mid-write")
        return await publish(batch)

    monkeypatch.setattr(link.publisher, "publish", once_broken)
    await asyncio.wait_for(worker.run(until_idle=True), timeout=20)
    assert len(faults) == 1
    outcome = await read_outcome(real_redis, "surfaced")
    assert outcome is not None and outcome.status == "completed"


@pytest.mark.parametrize("events", [1, 4, 5, 10, 20])
async def test_a_dead_producer_is_failed_whatever_its_event_count_against_the_read_share(
    real_redis: Redis, events: int
) -> None:
    """One open message beside `D(k)`: the share is 5 events. A producer that wrote a multiple of it
    must not stay 'behind' forever."""
    await write_events(real_redis, "dead-end", LONG[:events], first=1)
    await real_redis.xadd(SPACE.dispatch(0), {"m": "dead-end"})
    await asyncio.wait_for(run_burst(real_redis, read_count=10, idle_timeout_s=0.5), timeout=15)
    outcome = await read_outcome(real_redis, "dead-end")
    assert outcome is not None and outcome.error is not None and outcome.error["code"] == "idle_timeout"


async def test_an_upkeep_while_the_ending_is_written_does_not_take_the_message_for_lost(
    real_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write that ends a message acks its entry; a lease renewal running before the round applies
    that write's verdict must not find the entry gone and drop the message as lost."""
    await real_redis.xgroup_create(SPACE.dispatch(0), "workers", id="0", mkstream=True)
    worker = Worker(real_redis, settings_for(takeover_after_ms=100))  # an upkeep every 25 ms
    link = await worker.link_for(0)
    publish, written, release = link.publisher.publish, asyncio.Event(), asyncio.Event()

    async def written_then_held(batch: Batch[Any]) -> list[WriteVerdict]:
        verdicts = await publish(batch)
        if any(write.ending for write in batch.writes):
            written.set()
            await release.wait()
        return verdicts

    monkeypatch.setattr(link.publisher, "publish", written_then_held)
    partition = Partition(worker.state, 0, link)
    await write_events(real_redis, "ending", CASES["plain_text"]["events"])
    await real_redis.xadd(SPACE.dispatch(0), {"m": "ending"})

    async def ending_taken() -> bool:
        handler = partition.held.open.get(SPACE.message("ending").events.encode())
        return handler is not None and handler.ending_in_flight

    async def ending_written() -> bool:
        return written.is_set()

    await rounds_until(partition, ending_taken)
    await wait_for(ending_written, timeout_s=10, what="the ending's write")  # acked, verdict not applied
    assert await real_redis.xpending(SPACE.dispatch(0), "workers") == {
        "pending": 0, "min": None, "max": None, "consumers": []
    }  # fmt: skip
    renew, renewals = link.leases.renew, []

    async def recorded_renew(dispatch: str, held: Any) -> list[bytes]:
        renewals.append(list(held))
        return await renew(dispatch, held)

    monkeypatch.setattr(link.leases, "renew", recorded_renew)
    partition._upkeep_at = 0.0  # the next round's upkeep runs before it settles the write
    next_round = asyncio.create_task(partition.round())

    async def upkept() -> bool:
        return bool(renewals)

    await wait_for(upkept, timeout_s=10, what="the upkeep of the round")
    release.set()
    assert await next_round
    assert worker.stats.lost_claims == 0
    assert worker.stats.completed == 1
    assert not partition.held.open
