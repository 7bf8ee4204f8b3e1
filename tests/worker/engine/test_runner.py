"""The Worker in-process, in burst mode, against fakeredis and the real redis-server."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from lcstream.streams.frames import Frame, FrameKind
from lcstream.streams.keys import Keyspace
from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_frames, read_outcome
from lcstream.worker.engine.runner import Worker
from tests.conftest import conformance_cases
from tests.helpers import assert_frames_match, collect_pubsub, in_process_oracle, run_burst, settings_for

CASES = conformance_cases()
PLAIN = next(c for c in CASES if c["name"] == "plain_text")


async def test_every_conformance_case_through_the_worker(any_redis: Redis) -> None:
    for case in CASES:
        await publish_events(any_redis, case["events"], message_id=case["message_id"])
    worker = await run_burst(any_redis)
    for case in CASES:
        expected = case["expected"]
        await assert_frames_match(any_redis, case["message_id"], expected)
        outcome = await read_outcome(any_redis, case["message_id"])
        assert outcome is not None
        if "output" in expected:
            assert outcome.status == "completed"
            assert outcome.message == expected["output"]
        else:
            assert outcome.status == "failed"
            assert outcome.error == {"message": expected["error"], "code": "overloaded"}
    assert worker.stats.completed + worker.stats.failed == len(CASES)
    assert await any_redis.xpending("lcstream:{0}:dispatch", "workers") == {
        "pending": 0, "min": None, "max": None, "consumers": []
    }  # fmt: skip


async def test_live_channel_carries_the_same_frames(real_redis: Redis) -> None:
    case = next(c for c in CASES if c["name"] == "parallel_tool_calls")
    keys = Keyspace().message(case["message_id"])
    pubsub = real_redis.pubsub()
    await pubsub.subscribe(keys.live)
    await publish_events(real_redis, case["events"])
    await run_burst(real_redis)
    stored = await read_frames(real_redis, case["message_id"])
    payloads = await collect_pubsub(pubsub, done=lambda got: len(got) >= len(stored))
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    assert [Frame.from_live(p) for _, p in payloads] == stored


async def test_outcome_keys_expire_after_retention(any_redis: Redis) -> None:
    case = PLAIN
    await publish_events(any_redis, case["events"])
    await run_burst(any_redis, retention_s=120)
    keys = Keyspace().message(case["message_id"])
    for key in (keys.events, keys.out, keys.result):
        ttl = await any_redis.ttl(key)
        assert 0 < ttl <= 120, key


async def test_lifecycle_notices_started_then_outcome(real_redis: Redis) -> None:
    pubsub = real_redis.pubsub()
    await pubsub.subscribe("lcstream:messages")
    ok = next(c for c in CASES if "output" in c["expected"])
    bad = next(c for c in CASES if "error" in c["expected"])
    for case in (ok, bad):
        await publish_events(real_redis, case["events"])
    await run_burst(real_redis)
    payloads = await collect_pubsub(pubsub, done=lambda got: len(got) >= 4)
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    notices = [orjson.loads(p) for _, p in payloads]
    for case in (ok, bad):
        mine = [n["status"] for n in notices if n["message_id"] == case["message_id"]]
        assert mine == ["started", "completed" if "output" in case["expected"] else "failed"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b'{"event": "content-block-delta", "delta": {"type": "text-delta"}}', "invalid_shape"),
        (b'{"event": "message-start", "id": "x", "metadata": ' + b"[" * 40 + b"]" * 40 + b"}", "too_deep"),
    ],
)
async def test_poison_event_fails_the_message_and_is_dead_lettered(
    any_redis: Redis, raw: bytes, reason: str
) -> None:
    good = PLAIN
    keys = Keyspace().message("poisoned-1")
    await any_redis.xadd(keys.events, {"e": raw}, id="0-1")
    await any_redis.xadd(keys.dispatch, {"m": "poisoned-1"})
    await publish_events(any_redis, good["events"], message_id=good["message_id"])
    worker = await run_burst(any_redis)

    outcome = await read_outcome(any_redis, "poisoned-1")
    assert outcome is not None and outcome.error is not None
    assert (outcome.status, outcome.error["code"]) == ("failed", reason)
    assert keys.events in outcome.error["message"] and "0-1" in outcome.error["message"]
    frames = await read_frames(any_redis, "poisoned-1")
    assert [f.kind for f in frames] == [FrameKind.ERROR]
    dead = await any_redis.xrange("lcstream:dead")
    assert len(dead) == 1
    fields = dead[0][1]
    assert fields[b"m"] == b"poisoned-1" and fields[b"reason"] == reason.encode()
    assert fields[b"dispatch_id"] and fields[b"deliveries"] == b"1"
    assert (await read_outcome(any_redis, good["message_id"])) is not None
    assert (worker.stats.completed, worker.stats.failed) == (1, 1)


async def test_poison_after_valid_events_keeps_the_frames_before_it(any_redis: Redis) -> None:
    case = next(c for c in CASES if c["name"] == "plain_text")
    events: list[dict[str, Any]] = case["events"][:5]
    await publish_events(any_redis, [*events, {"event": "content-block-start"}], message_id="half")
    await run_burst(any_redis)
    frames = await read_frames(any_redis, "half")
    # The worker fails the message at the bad entry; in-process, an error event does the same.
    oracle = await in_process_oracle([*events, {"event": "error", "message": "bad"}], "half")
    assert [f.data for f in frames if f.kind is FrameKind.TEXT] == oracle["text_deltas"]
    assert frames[-1].kind is FrameKind.ERROR and frames[-1].data["code"] == "invalid_shape"


async def test_dispatch_entry_with_bad_message_id_is_dead_lettered_and_acked(any_redis: Redis) -> None:
    await any_redis.xadd("lcstream:{0}:dispatch", {"m": "bad id {with} braces*"})
    await any_redis.xadd("lcstream:{0}:dispatch", {"other": "field"})
    await run_burst(any_redis)
    dead = await any_redis.xrange("lcstream:dead")
    assert [d[1][b"reason"] for d in dead] == [b"invalid_message_id", b"missing_message_id"]
    assert (await any_redis.xpending("lcstream:{0}:dispatch", "workers"))["pending"] == 0


async def test_unknown_event_kind_is_ignored_not_poison(any_redis: Redis) -> None:
    case = next(c for c in CASES if c["name"] == "single_tool_call")
    events = [case["events"][0], {"event": "tool-started", "tool_call_id": "x", "tool_name": "y"}]
    events += case["events"][1:]
    await publish_events(any_redis, events, message_id=case["message_id"])
    await run_burst(any_redis)
    outcome = await read_outcome(any_redis, case["message_id"])
    assert outcome is not None and outcome.message == case["expected"]["output"]


async def test_redelivery_of_a_finished_message_only_acks(any_redis: Redis) -> None:
    case = PLAIN
    await publish_events(any_redis, case["events"])
    await run_burst(any_redis)
    first = await any_redis.get(Keyspace().message(case["message_id"]).result)
    # A duplicate announcement (a producer in another language retrying its XADD *).
    await any_redis.xadd("lcstream:{0}:dispatch", {"m": case["message_id"]})
    again = await run_burst(any_redis)
    assert again.stats.events == 0  # found committed when claimed: not replayed, no second `started`
    assert await any_redis.get(Keyspace().message(case["message_id"]).result) == first
    assert (await any_redis.xpending("lcstream:{0}:dispatch", "workers"))["pending"] == 0
    frames = await read_frames(any_redis, case["message_id"])
    assert [f.seq for f in frames] == list(range(1, len(frames) + 1))


async def test_backpressure_holds_at_most_max_open_messages(any_redis: Redis) -> None:
    for i in range(7):
        await publish_events(any_redis, CASES[i % len(CASES)]["events"], message_id=f"bp-{i}")
    worker = Worker(any_redis, settings_for(max_open_messages=2))
    seen: list[int] = []
    settle = worker.state.settle_capacity

    def recording_settle(reserved: int) -> None:
        settle(reserved)
        seen.append(worker.open_messages)

    worker.state.settle_capacity = recording_settle  # type: ignore[method-assign]
    await asyncio.wait_for(worker.run(until_idle=True), timeout=60)
    assert seen and max(seen) <= 2
    assert worker.stats.completed + worker.stats.failed == 7


async def test_partitions_spread_messages_and_all_complete(any_redis: Redis) -> None:
    keyspace = Keyspace(partitions=4)
    ids = [f"part-{i}" for i in range(12)]
    for message_id in ids:
        await publish_events(any_redis, PLAIN["events"], message_id=message_id, keyspace=keyspace)
    assert len({keyspace.message(m).partition for m in ids}) > 1
    await run_burst(any_redis, partitions=4)
    for message_id in ids:
        outcome = await read_outcome(any_redis, message_id, keyspace)
        assert outcome is not None and outcome.status == "completed"


async def test_a_backlog_waiting_at_start_is_claimed_without_blocking(
    any_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start-up reads this consumer's own pending entries first; the new ones after them are
    claimed at once: no blocked read and no wait for capacity while work waits in `D(k)` (the delay
    target out of the way: in-process fakeredis can be slower than it)."""
    for case in CASES:
        await publish_events(any_redis, case["events"], message_id=case["message_id"])
    worker = Worker(any_redis, settings_for(target_delay_ms=60_000))
    blocks: list[int | None] = []
    capacity_waits: list[None] = []
    wire = (await worker.link_for(0)).wire
    read = wire.xread

    async def recording_xread(streams: Any, *, count: int, block_ms: int | None) -> Any:
        blocks.append(block_ms)
        return await read(streams, count=count, block_ms=block_ms)

    async def recording_wait() -> None:
        capacity_waits.append(None)

    monkeypatch.setattr(wire, "xread", recording_xread)
    monkeypatch.setattr(worker.state, "wait_for_capacity", recording_wait)
    await asyncio.wait_for(worker.run(until_idle=True), timeout=30)
    assert worker.stats.completed + worker.stats.failed == len(CASES)
    assert blocks[0] is None
    assert capacity_waits == []


async def test_one_claim_takes_at_most_claim_count_messages(any_redis: Redis) -> None:
    """A burst of new messages is spread over the workers awake, not taken whole by the first."""
    worker = Worker(any_redis, settings_for(claim_count=3, max_open_messages=100))
    assert worker.state.reserve_capacity() == 3
    full = Worker(any_redis, settings_for(claim_count=50, max_open_messages=10))
    assert full.state.reserve_capacity() == 10


async def test_one_read_returns_at_most_read_count_events_over_all_open_messages(
    any_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget is per read, shared by the streams (at least one each): many open messages
    can't bring a reply of read_count entries per stream."""
    for case in CASES:
        await publish_events(any_redis, case["events"], message_id=case["message_id"])
    worker = Worker(any_redis, settings_for(read_count=12))
    wire = (await worker.link_for(0)).wire
    read = wire.xread
    asked: list[tuple[int, int]] = []  # (streams, count per stream)

    async def recording_xread(streams: Any, *, count: int, block_ms: int | None) -> Any:
        asked.append((len(streams), count))
        return await read(streams, count=count, block_ms=block_ms)

    monkeypatch.setattr(wire, "xread", recording_xread)
    await asyncio.wait_for(worker.run(until_idle=True), timeout=30)
    assert worker.stats.completed + worker.stats.failed == len(CASES)
    assert any(streams > 1 for streams, _ in asked)
    assert all(streams * count <= max(12, streams) for streams, count in asked)
