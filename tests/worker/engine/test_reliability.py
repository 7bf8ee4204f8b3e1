"""Poison, limits, idle producers, delivery limits, fencing and hand-back, in-process on real Redis."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from lcstream.streams.frames import FrameKind
from lcstream.streams.groups import trim_dispatch
from lcstream.streams.keys import Keyspace
from lcstream.streams.producer import StreamProducer
from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_frames, read_outcome
from lcstream.worker.engine.leases import RELEASED_IDLE_MS
from tests.conftest import conformance_cases
from tests.helpers import (
    in_process_oracle,
    run_burst,
    running_worker,
    wait_for,
    wait_until_open,
)

CASES = {c["name"]: c for c in conformance_cases()}
PLAIN = CASES["plain_text"]
DISPATCH = "lcstream:{0}:dispatch"


def start(message_id: str) -> dict[str, Any]:
    return {"event": "message-start", "role": "ai", "id": message_id}


TEXT_BLOCK = {"event": "content-block-start", "index": 0, "content": {"type": "text", "text": ""}}
FINISH = {"event": "message-finish"}

# Each bad input, as raw `e` field values per entry id, and the reason it must be failed with.
POISON: dict[str, tuple[list[tuple[str, bytes]], str]] = {
    "gap": ([("0-1", b'{"event":"message-start","id":"p"}'), ("0-3", b'{"event":"message-finish"}')], "gap"),
    "after_terminal": (
        [
            ("0-1", b'{"event":"message-start","id":"p"}'),
            ("0-2", b'{"event":"message-finish"}'),
            ("0-3", b'{"event":"message-finish"}'),
        ],
        "after_terminal",  # rejected, never dropped: the end it follows is not taken
    ),
    "duplicate_start": (
        [("0-1", b'{"event":"message-start","id":"p"}'), ("0-2", b'{"event":"message-start","id":"p"}')],
        "duplicate_start",
    ),
    "missing_start": ([("0-1", b'{"event":"message-finish"}')], "missing_start"),
    "malformed_json": ([("0-1", b'{"event": "message-start", "id": ')], "invalid_json"),
    "invalid_utf8": ([("0-1", b'{"event": "message-start", "id": "\xc3\x28"}')], "invalid_json"),
    "wrong_shape": ([("0-1", b'["message-start"]')], "invalid_shape"),
    "bool_index": (
        [
            ("0-1", b'{"event":"message-start","id":"p"}'),
            ("0-2", b'{"event":"content-block-start","index":true,"content":{"type":"text"}}'),
        ],
        "invalid_shape",
    ),
    "too_deep": (
        [("0-1", b'{"event":"message-start","id":"p","metadata":{"a":' + b"[" * 64 + b"]" * 64 + b"}}")],
        "too_deep",
    ),
    "ten_megabytes": (
        [("0-1", b'{"event":"message-start","id":"p","metadata":{"x":"' + b"a" * 10_000_000 + b'"}}')],
        "too_large",
    ),
}


@pytest.mark.parametrize("case", sorted(POISON))
async def test_each_bad_input_fails_its_message_and_the_next_one_completes(
    real_redis: Redis, case: str
) -> None:
    entries, reason = POISON[case]
    keys = Keyspace().message(f"poison-{case}")
    for entry_id, raw in entries:
        await real_redis.xadd(keys.events, {"e": raw}, id=entry_id)
    await real_redis.xadd(keys.dispatch, {"m": keys.message_id})
    await publish_events(real_redis, PLAIN["events"], message_id=f"after-{case}")
    await run_burst(real_redis)

    outcome = await read_outcome(real_redis, keys.message_id)
    assert outcome is not None
    dead = [d for d in await real_redis.xrange("lcstream:dead") if d[1][b"m"] == keys.message_id.encode()]
    assert outcome.error is not None
    assert (outcome.status, outcome.error["code"]) == ("failed", reason)
    assert len(dead) == 1 and dead[0][1][b"reason"] == reason.encode()
    frames = await read_frames(real_redis, keys.message_id)
    assert frames[-1].kind is FrameKind.ERROR and frames[-1].data["code"] == reason
    after = await read_outcome(real_redis, f"after-{case}")
    assert after is not None and after.message == PLAIN["expected"]["output"]
    assert (await real_redis.xpending(DISPATCH, "workers"))["pending"] == 0


async def test_too_many_events_is_poison(real_redis: Redis) -> None:
    events = PLAIN["events"]
    await publish_events(real_redis, events, message_id="long-one")
    await run_burst(real_redis, max_events_per_message=10)
    outcome = await read_outcome(real_redis, "long-one")
    assert outcome is not None and outcome.error is not None
    assert outcome.error["code"] == "too_many_events"
    assert "0-11" in outcome.error["message"]


async def test_silent_producer_fails_with_idle_timeout(real_redis: Redis) -> None:
    async with running_worker(real_redis, idle_timeout_s=2):
        async with StreamProducer(real_redis, "silent-1") as producer:
            for event in PLAIN["events"][:6]:
                await producer.send(event)
        stopped_at = time.monotonic()

        async def failed() -> bool:
            return await read_outcome(real_redis, "silent-1") is not None

        await wait_for(failed, timeout_s=10, what="the idle timeout")
        took_s = time.monotonic() - stopped_at
    outcome = await read_outcome(real_redis, "silent-1")
    assert outcome is not None and outcome.error is not None
    assert outcome.error["code"] == "idle_timeout"
    assert 2.0 <= took_s < 4.0
    frames = await read_frames(real_redis, "silent-1")
    oracle = await in_process_oracle([*PLAIN["events"][:6], {"event": "error", "message": "x"}], "silent-1")
    assert [f.data for f in frames if f.kind is FrameKind.TEXT] == oracle["text_deltas"]
    dead = await real_redis.xrange("lcstream:dead")
    assert [d[1][b"reason"] for d in dead] == [b"idle_timeout"]


async def test_message_delivered_too_often_is_dead_lettered_without_replay(real_redis: Redis) -> None:
    keys = Keyspace().message("worn-out")
    await publish_events(real_redis, PLAIN["events"][:8], message_id="worn-out")
    # Frames 1..3 were written by earlier (crashed) deliveries.
    for seq in (1, 2, 3):
        await real_redis.xadd(keys.out, {"f": b'{"kind":"text","data":"x"}'}, id=f"0-{seq}")
    await real_redis.xgroup_create(DISPATCH, "workers", id="0")
    await real_redis.xreadgroup("workers", "crashed", {DISPATCH: ">"})
    entry_id = (await real_redis.xrange(DISPATCH))[0][0]
    for _ in range(5):  # each takeover by a worker that then died advances the count
        await real_redis.xclaim(DISPATCH, "workers", "crashed", 0, [entry_id], idle=10**9)
    worker = await run_burst(real_redis, max_deliveries=5, takeover_after_ms=100)
    outcome = await read_outcome(real_redis, "worn-out")
    assert outcome is not None and outcome.error is not None
    assert outcome.error["code"] == "max_deliveries"
    frames = await read_frames(real_redis, "worn-out")
    assert [f.seq for f in frames] == [1, 2, 3, 4]
    assert frames[-1].kind is FrameKind.ERROR
    dead = await real_redis.xrange("lcstream:dead")
    assert dead[0][1][b"reason"] == b"max_deliveries" and dead[0][1][b"deliveries"] == b"7"
    assert worker.stats.taken_over == 1
    assert (await real_redis.xpending(DISPATCH, "workers"))["pending"] == 0


async def test_renewal_reports_a_lost_lease_and_the_worker_drops_the_message(real_redis: Redis) -> None:
    async with running_worker(real_redis, takeover_after_ms=400, idle_timeout_s=60) as worker:
        async with StreamProducer(real_redis, "leased") as producer:
            await producer.send(PLAIN["events"][0])
        await wait_until_open(worker, 1)
        entry_id = (await real_redis.xrange(DISPATCH))[0][0]
        await real_redis.xclaim(DISPATCH, "workers", "thief", 0, [entry_id])
        await wait_until_open(worker, 0, what="the renewal to notice the lost lease")
    assert worker.stats.lost_claims == 1
    pending = await real_redis.xpending_range(DISPATCH, "workers", min="-", max="+", count=10)
    assert [p["consumer"] for p in pending] == [b"thief"]


async def test_renewal_keeps_a_slow_message_from_being_taken_over(real_redis: Redis) -> None:
    async with running_worker(real_redis, takeover_after_ms=300, idle_timeout_s=60) as worker:
        async with StreamProducer(real_redis, "slow") as producer:
            await producer.send(PLAIN["events"][0])
            await wait_until_open(worker, 1)
            # Longer than the takeover time with no events: only renewals keep the lease fresh.
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                pending = await real_redis.xpending_range(DISPATCH, "workers", min="-", max="+", count=1)
                assert pending[0]["time_since_delivered"] < 300
                await asyncio.sleep(0.05)
            for event in PLAIN["events"][1:]:
                await producer.send(event)

        async def done() -> bool:
            return await read_outcome(real_redis, "slow") is not None

        await wait_for(done, timeout_s=10, what="the outcome")
    outcome = await read_outcome(real_redis, "slow")
    assert outcome is not None and outcome.message == PLAIN["expected"]["output"]
    assert worker.stats.lost_claims == 0


async def test_stop_hands_back_unfinished_messages_idle_and_uncounted(real_redis: Redis) -> None:
    async with running_worker(real_redis, grace_period_s=0.2) as worker:
        async with StreamProducer(real_redis, "unfinished") as producer:
            for event in PLAIN["events"][:5]:
                await producer.send(event)
        await wait_until_open(worker, 1, what="the claim")
    assert await read_outcome(real_redis, "unfinished") is None
    pending = await real_redis.xpending_range(DISPATCH, "workers", min="-", max="+", count=10)
    assert len(pending) == 1
    assert pending[0]["time_since_delivered"] >= RELEASED_IDLE_MS
    assert pending[0]["times_delivered"] == 0  # the peer's takeover brings it back to 1

    peer_overrides = {
        "consumer": "peer",
        "takeover_after_ms": 60_000,
        "idle_timeout_s": 60,
        "grace_period_s": 0.2,
    }
    async with running_worker(real_redis, **peer_overrides) as peer_worker:
        await wait_until_open(peer_worker, 1, what="the peer to take the handed-back message")
    assert peer_worker.stats.taken_over == 1
    # The peer had it (the producer never finished), with its delivery count back at 1.
    pending = await real_redis.xpending_range(DISPATCH, "workers", min="-", max="+", count=10)
    assert [p["times_delivered"] for p in pending] == [0]  # the peer handed it back in turn


async def test_cancelled_blocking_read_leaves_no_stray_reply_in_the_pool(real_redis: Redis) -> None:
    await real_redis.set("marker", b"value")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(real_redis.xread({"nothing-here": "$"}, block=2000), timeout=0.1)
    # The connection the cancelled XREAD used must not hand its late reply to the next command.
    for _ in range(5):
        assert await real_redis.get("marker") == b"value"
    await real_redis.xadd("nothing-here", {"k": "v"})
    assert await real_redis.get("marker") == b"value"


async def test_trim_dispatch_keeps_pending_and_undelivered_entries(real_redis: Redis) -> None:
    await real_redis.xgroup_create(DISPATCH, "workers", id="0", mkstream=True)
    for i in range(500):
        await real_redis.xadd(DISPATCH, {"m": f"m{i}"})
    got = await real_redis.xreadgroup("workers", "c", {DISPATCH: ">"}, count=400)
    ids = [entry_id for entry_id, _ in got[0][1]]
    await real_redis.xack(DISPATCH, "workers", *ids[:300], *ids[301:])  # ids[300] stays pending
    await trim_dispatch(real_redis, DISPATCH)
    remaining = [entry_id for entry_id, _ in await real_redis.xrange(DISPATCH)]
    assert ids[300] in remaining  # still pending
    assert len(remaining) < 500 and len(remaining) >= 200  # trimmed, undelivered 100 kept
    assert set(remaining) >= {entry_id for entry_id, _ in (await real_redis.xrange(DISPATCH))[-100:]}


async def test_a_deleted_dispatch_stream_and_group_are_recreated(real_redis: Redis) -> None:
    async with running_worker(real_redis):
        await publish_events(real_redis, PLAIN["events"], message_id="before")

        async def finished(message_id: str) -> bool:
            return await read_outcome(real_redis, message_id) is not None

        await wait_for(lambda: finished("before"), timeout_s=10, what="the first outcome")
        await real_redis.delete(DISPATCH)  # an operator's mistake: the group goes with it
        await publish_events(real_redis, PLAIN["events"], message_id="after")
        await wait_for(lambda: finished("after"), timeout_s=10, what="the outcome after the group was lost")
    groups = await real_redis.xinfo_groups(DISPATCH)
    assert [g["name"] for g in groups] == [b"workers"]


async def test_burst_mode_takes_over_handed_back_messages_in_every_partition(real_redis: Redis) -> None:
    keyspace = Keyspace(partitions=4)
    ids = [f"handed-{i}" for i in range(8)]
    producers = [StreamProducer(real_redis, m, keyspace=keyspace) for m in ids]
    for producer in producers:
        for event in PLAIN["events"][:5]:
            await producer.send(event)
        await producer.flush()
    async with running_worker(real_redis, partitions=4, grace_period_s=0.1) as first:
        await wait_until_open(first, len(ids), what="the first worker to hold every message")
    for producer in producers:
        for event in PLAIN["events"][5:]:
            await producer.send(event)
        await producer.aclose()
    second = await run_burst(real_redis, consumer="second", partitions=4, takeover_after_ms=60_000)
    assert second.stats.taken_over == len(ids)
    for message_id in ids:
        outcome = await read_outcome(real_redis, message_id, keyspace)
        assert outcome is not None and outcome.message == PLAIN["expected"]["output"]


async def test_restart_re_reads_more_own_pending_entries_than_one_read_returns(real_redis: Redis) -> None:
    ids = [f"pending-{i}" for i in range(7)]
    for message_id in ids:
        await publish_events(real_redis, PLAIN["events"], message_id=message_id)
    await real_redis.xgroup_create(DISPATCH, "workers", id="0")
    # A previous run of this consumer claimed them all, then died.
    await real_redis.xreadgroup("workers", "test-worker", {DISPATCH: ">"})
    worker = await run_burst(real_redis, read_count=2, takeover_after_ms=60_000)
    assert worker.stats.completed == len(ids)
    assert worker.stats.lost_claims == 0
    for message_id in ids:
        outcome = await read_outcome(real_redis, message_id)
        assert outcome is not None and outcome.message == PLAIN["expected"]["output"]
