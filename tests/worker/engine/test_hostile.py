"""Hostile keys and producers beside valid messages: the worker stays up and every valid message completes."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from lcstream.streams.events import now_ms
from lcstream.streams.frames import FrameKind
from lcstream.streams.keys import Keyspace
from lcstream.streams.producer import StreamProducer
from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_frames, read_outcome
from lcstream.worker.engine.runner import Worker
from tests.conftest import conformance_cases
from tests.helpers import all_outcomes, running_worker, wait_for, wait_until_open, write_events

CASES = {c["name"]: c for c in conformance_cases()}
PLAIN = CASES["plain_text"]["events"]
SPACE = Keyspace()
DISPATCH = SPACE.dispatch(0)


async def failed_with(redis: Redis, message_id: str) -> str | None:
    outcome = await read_outcome(redis, message_id)
    assert outcome is not None, message_id
    return outcome.error["code"] if outcome.error is not None else None


async def dead_reasons(redis: Redis) -> dict[str, list[str]]:
    reasons: dict[str, list[str]] = {}
    for _, fields in await redis.xrange(SPACE.dead):
        reasons.setdefault(fields[b"m"].decode(), []).append(fields[b"reason"].decode())
    return reasons


async def completes(redis: Redis, worker: Worker, message_id: str, *, within_s: float = 10) -> None:
    await publish_events(redis, PLAIN, message_id=message_id)
    await wait_for(lambda: all_outcomes(redis, [message_id]), timeout_s=within_s, what=f"{message_id} to end")
    assert await failed_with(redis, message_id) is None


async def test_keys_of_the_wrong_type_fail_only_their_message(real_redis: Redis) -> None:
    squatted = {
        "bad-events": SPACE.message("bad-events").events,
        "bad-out": SPACE.message("bad-out").out,
        "bad-result": SPACE.message("bad-result").result,
    }
    for message_id, key in squatted.items():
        if key.endswith(":events"):
            await real_redis.set(key, "x")
        else:
            await write_events(real_redis, message_id, PLAIN)
            await real_redis.hset(key, mapping={"x": "1"})  # type: ignore[misc]
    async with running_worker(real_redis) as worker:
        for message_id in squatted:
            await real_redis.xadd(DISPATCH, {"m": message_id})
            await completes(real_redis, worker, f"after-{message_id}")
        await wait_for(
            lambda: all_outcomes(real_redis, ["bad-events", "bad-out"]), what="the squatted to fail"
        )
        await wait_until_open(worker, 0)
    assert await failed_with(real_redis, "bad-events") == "wrong_type"
    assert await failed_with(real_redis, "bad-out") == "wrong_type"
    assert await real_redis.type(squatted["bad-result"]) == b"hash"  # left as it was, not overwritten
    reasons = await dead_reasons(real_redis)
    assert {m: reasons[m] for m in squatted} == {m: ["wrong_type"] for m in squatted}
    assert (await real_redis.xpending(DISPATCH, "workers"))["pending"] == 0


async def test_an_events_stream_replaced_mid_message_fails_that_message_alone(real_redis: Redis) -> None:
    keys = SPACE.message("replaced")
    async with running_worker(real_redis) as worker:
        async with StreamProducer(real_redis, "replaced") as producer:
            await producer.send(PLAIN[0])
        await wait_until_open(worker, 1)
        await real_redis.delete(keys.events)
        await real_redis.set(keys.events, "not a stream any more")  # the shared XREAD now fails WRONGTYPE
        await wait_for(lambda: all_outcomes(real_redis, ["replaced"]), what="the replaced message to fail")
        await completes(real_redis, worker, "beside-replaced")
    assert await failed_with(real_redis, "replaced") == "wrong_type"
    assert (await dead_reasons(real_redis))["replaced"] == ["wrong_type"]


async def test_producer_times_in_the_future_or_absurd_do_not_keep_a_message_open(real_redis: Redis) -> None:
    times = {"ahead": now_ms() + 86_400_000, "absurd": int("9" * 30), "negative": -5}
    async with running_worker(real_redis, idle_timeout_s=1) as worker:
        for message_id, time_ms in times.items():
            await write_events(real_redis, message_id, PLAIN[:1], t=str(time_ms))
            await real_redis.xadd(DISPATCH, {"m": message_id})
        started = time.monotonic()
        await wait_for(lambda: all_outcomes(real_redis, list(times)), timeout_s=10, what="silent producers")
        waited_s = time.monotonic() - started
        await completes(real_redis, worker, "beside-clocks")
    assert {m: await failed_with(real_redis, m) for m in times} == dict.fromkeys(times, "idle_timeout")
    assert 1 <= waited_s <= 3  # the idle timeout, plus an upkeep to notice it


async def test_a_message_open_past_max_open_s_fails(real_redis: Redis) -> None:
    start, block, delta = PLAIN[0], PLAIN[1], PLAIN[2]
    async with running_worker(real_redis, max_open_s=1) as worker:
        async with StreamProducer(real_redis, "trickle") as producer:
            await producer.send(start)
            await producer.send(block)
            deadline = time.monotonic() + 10
            while not await real_redis.exists(SPACE.message("trickle").result):  # a producer that never ends
                assert time.monotonic() < deadline, "still open after 10 s"
                await producer.send(delta)
                await asyncio.sleep(0.05)  # the producer's pace: the workload, not synchronization
        await completes(real_redis, worker, "beside-trickle")
    assert await failed_with(real_redis, "trickle") == "max_open_time"


async def test_ghost_announcements_do_not_hold_slots_ahead_of_a_real_message(real_redis: Redis) -> None:
    """3,000 announcements whose events never come, then a valid message: it completes within 5 s
    (with the default 1,000 open slots and 300 s idle timeout), and the ghosts wait without slots."""
    pipe = real_redis.pipeline(transaction=False)
    for n in range(3_000):
        pipe.xadd(DISPATCH, {"m": f"ghost-{n}"})
    await pipe.execute()
    async with running_worker(real_redis) as worker:
        await completes(real_redis, worker, "behind-ghosts", within_s=5)
        assert worker.open_messages == 0
        assert worker.waiting_messages == 3_000
        assert worker.metrics.registry.get_sample_value("lcstream_worker_waiting_messages") == 3_000
        # A ghost whose producer starts late (it announced first) is opened once its events appear.
        await write_events(real_redis, "ghost-7", PLAIN)
        await wait_for(lambda: all_outcomes(real_redis, ["ghost-7"]), timeout_s=5, what="a late producer")
    assert await failed_with(real_redis, "ghost-7") is None


async def test_ghosts_fail_with_the_idle_timeout_after_their_announcement(real_redis: Redis) -> None:
    ghosts = [f"ghost-{n}" for n in range(20)]
    for message_id in ghosts:
        await real_redis.xadd(DISPATCH, {"m": message_id})
    async with running_worker(real_redis, idle_timeout_s=1) as worker:
        await wait_for(lambda: all_outcomes(real_redis, ghosts), timeout_s=5, what="the ghosts to fail")
        await completes(real_redis, worker, "after-ghosts")
    assert {m: await failed_with(real_redis, m) for m in ghosts} == dict.fromkeys(ghosts, "idle_timeout")
    reasons = await dead_reasons(real_redis)
    assert all(reasons[m] == ["idle_timeout"] for m in ghosts)


async def test_a_bad_namespace_node_or_run_fails_the_message_and_is_not_copied(real_redis: Redis) -> None:
    entries: dict[str, dict[str, str]] = {
        "bad-ns": {"ns": "not json"},
        "ns-of-numbers": {"ns": "[1, 2]"},
        "huge-node": {"node": "n" * 2_000_000},
        "bad-run": {"run": "a run id with spaces"},
    }
    for message_id, fields in entries.items():
        await write_events(real_redis, message_id, PLAIN)
        await real_redis.xadd(DISPATCH, {"m": message_id, **fields})  # type: ignore[dict-item]
    async with running_worker(real_redis) as worker:
        await wait_for(lambda: all_outcomes(real_redis, list(entries)), what="bad dispatch entries to fail")
        await completes(real_redis, worker, "after-bad-dispatch")
    for message_id in entries:
        assert await failed_with(real_redis, message_id) == "invalid_dispatch"
        frames = await read_frames(real_redis, message_id)
        assert [f.kind for f in frames] == [FrameKind.ERROR]
        assert len(frames[0].data["message"]) < 200
    assert (await dead_reasons(real_redis))["huge-node"] == ["invalid_dispatch"]


async def test_a_dispatch_stream_of_the_wrong_type_is_logged_and_waited_out(real_redis: Redis) -> None:
    await real_redis.set(DISPATCH, "not a stream")
    async with running_worker(real_redis) as worker:
        await wait_for(lambda: _not_ready(worker), what="the partition to report Redis lost")
        await real_redis.delete(DISPATCH)  # an operator repairs it: the group is recreated
        await completes(real_redis, worker, "after-repair")


async def _not_ready(worker: Worker) -> bool:
    return not worker.health.ready()[0]
