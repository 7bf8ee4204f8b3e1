"""The fenced commit script on its own, on a real redis-server: every verdict, and what each writes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from lcstream.streams.frames import Frame, FrameKind, Outcome
from lcstream.streams.keys import Keyspace, MessageKeys
from lcstream.streams.reader import read_frames, read_outcome
from lcstream.worker.engine.batch import (
    Batch,
    DeadLetter,
    Ending,
    MessageWrite,
    Verdict,
    WriteVerdict,
    lifecycle_notice,
)
from lcstream.worker.engine.publisher import FramePublisher
from lcstream.worker.engine.runner import Worker
from tests.conftest import start_redis_server, stop_redis_server
from tests.helpers import collect_pubsub, settings_for

GROUP, CONSUMER = "workers", "test-worker"
SPACE = Keyspace()
NOBODY = object()  # the publisher never looks at who made a write


def text_frames(first: int, last: int) -> tuple[Frame, ...]:
    return tuple(Frame(seq, FrameKind.TEXT, f"t{seq}") for seq in range(first, last + 1))


def completed(kept_seq: int, *, terminal_id: bytes | None = None) -> Ending:
    return Ending(Outcome.completed({"type": "ai"}), None, 1, terminal_id, kept_seq)


def failed(reason: str, kept_seq: int, *, wrong_type: bool = False) -> Ending:
    outcome = Outcome.failed(f"{reason} happened", reason)
    return Ending(outcome, DeadLetter(reason, f"{reason} happened"), 2, None, kept_seq, wrong_type)


async def claim(redis: Redis, message_id: str, *, owner: str = CONSUMER) -> tuple[MessageKeys, bytes]:
    """Announce M and let `owner` claim it; return its keys and dispatch entry id."""
    keys = SPACE.message(message_id)
    if not await redis.exists(keys.events):
        await redis.xadd(keys.events, {"e": b'{"event":"message-start"}'}, id="0-1")
    entry_id = await redis.xadd(keys.dispatch, {"m": message_id})
    await redis.xreadgroup(GROUP, owner, {keys.dispatch: ">"})
    return keys, entry_id


def write(
    keys: MessageKeys, entry_id: bytes, frames: tuple[Frame, ...], ending: Ending | None = None
) -> Batch[Any]:
    return Batch((MessageWrite(NOBODY, keys, entry_id, frames, ending),), (), None)


async def publish(publisher: FramePublisher, batch: Batch[Any]) -> WriteVerdict:
    (verdict,) = await publisher.publish(batch)
    return verdict


async def publisher_on(redis: Redis, *, dead_letters_in_script: bool = True) -> FramePublisher:
    await redis.xgroup_create(SPACE.dispatch(0), GROUP, id="0", mkstream=True)
    link = await Worker(redis, settings_for()).link_for(0)
    if dead_letters_in_script:
        return link.publisher
    publisher = FramePublisher(
        link.wire, redis, redis, SPACE, group=GROUP, consumer=CONSUMER, retention_s=60,
        live_publish=b"PUBLISH", dead_letters_in_script=False,
    )  # fmt: skip
    await publisher.load_script()
    return publisher


@pytest.fixture
async def own_server(tmp_path: Path) -> AsyncIterator[Redis]:
    """A redis-server of this test's own: made read-only or out of memory without touching others."""
    server = start_redis_server(tmp_path)
    client = Redis.from_url(server.url)
    yield client
    await client.aclose()
    stop_redis_server(server)


async def test_frames_are_appended_and_published_once_even_when_written_again(real_redis: Redis) -> None:
    publisher = await publisher_on(real_redis)
    keys, entry_id = await claim(real_redis, "m1")
    pubsub = real_redis.pubsub()
    await pubsub.subscribe(keys.live)
    assert (await publish(publisher, write(keys, entry_id, text_frames(1, 3)))).verdict is Verdict.WRITTEN
    # A rebuilt message writes frames 1..5: the three that exist are skipped and not published again.
    assert (await publish(publisher, write(keys, entry_id, text_frames(1, 5)))).verdict is Verdict.WRITTEN
    published = await collect_pubsub(pubsub, done=lambda got: len(got) >= 5)
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    assert [Frame.from_live(payload).seq for _, payload in published] == [1, 2, 3, 4, 5]
    assert [f.data for f in await read_frames(real_redis, "m1")] == [f"t{n}" for n in range(1, 6)]
    assert await real_redis.exists(keys.result) == 0
    assert (await real_redis.xpending(keys.dispatch, GROUP))["pending"] == 1  # not ended: not acked


async def test_a_lost_claim_writes_nothing(real_redis: Redis) -> None:
    publisher = await publisher_on(real_redis)
    keys, entry_id = await claim(real_redis, "stolen", owner="thief")
    ending = failed("idle_timeout", 0)
    verdict = await publish(publisher, write(keys, entry_id, (Frame(1, FrameKind.ERROR, {}),), ending))
    assert verdict.verdict is Verdict.LOST
    assert await real_redis.exists(keys.out, keys.result, SPACE.dead) == 0
    pending = await real_redis.xpending_range(keys.dispatch, GROUP, min="-", max="+", count=10)
    assert [(p["consumer"], p["message_id"]) for p in pending] == [(b"thief", entry_id)]


async def test_an_ending_commits_once_with_exactly_one_dead_letter(real_redis: Redis) -> None:
    publisher = await publisher_on(real_redis)
    keys, entry_id = await claim(real_redis, "ends")
    batch = write(keys, entry_id, (*text_frames(1, 2), Frame(3, FrameKind.ERROR, {})), failed("too_large", 2))
    assert (await publish(publisher, batch)).verdict is Verdict.WRITTEN
    outcome = await read_outcome(real_redis, "ends")
    assert outcome is not None and outcome.error == {"message": "too_large happened", "code": "too_large"}
    assert 0 < await real_redis.ttl(keys.result) <= 60 * 60 * 24
    assert await real_redis.ttl(keys.out) > 0 and await real_redis.ttl(keys.events) > 0
    assert (await real_redis.xpending(keys.dispatch, GROUP))["pending"] == 0
    # Delivered again (announced twice, or its ack lost with a reply), it is only acked: one dead letter.
    _, again = await claim(real_redis, "ends")
    redelivered = Batch((replace(batch.writes[0], delivery_id=again),), (), None)
    assert (await publish(publisher, redelivered)).verdict is Verdict.ALREADY_COMMITTED
    assert (await real_redis.xpending(keys.dispatch, GROUP))["pending"] == 0
    dead = await real_redis.xrange(SPACE.dead)
    assert [(d[b"m"], d[b"reason"], d[b"deliveries"]) for _, d in dead] == [(b"ends", b"too_large", b"2")]


async def test_out_of_memory_refuses_the_write_and_nothing_counts(own_server: Redis) -> None:
    publisher = await publisher_on(own_server)
    keys, entry_id = await claim(own_server, "oom")
    await own_server.config_set("maxmemory-policy", "noeviction")
    batch = write(keys, entry_id, (*text_frames(1, 2), Frame(3, FrameKind.OUTPUT, {})), completed(2))
    await own_server.config_set("maxmemory", 1)
    try:
        refused = await publish(publisher, batch)
    finally:
        await own_server.config_set("maxmemory", 0)
    assert refused.verdict is Verdict.REFUSED and refused.detail.startswith("OOM")
    assert await own_server.exists(keys.out, keys.result) == 0
    assert (await own_server.xpending(keys.dispatch, GROUP))["pending"] == 1
    assert (await publish(publisher, batch)).verdict is Verdict.WRITTEN
    assert [f.seq for f in await read_frames(own_server, "oom")] == [1, 2, 3]


async def test_a_read_only_replica_refuses_the_write(own_server: Redis) -> None:
    publisher = await publisher_on(own_server)
    keys, entry_id = await claim(own_server, "ro")
    await own_server.execute_command("REPLICAOF", "127.0.0.1", "1")  # type: ignore[no-untyped-call]  # a master that never answers
    try:
        refused = await publish(publisher, write(keys, entry_id, text_frames(1, 1)))
    finally:
        await own_server.execute_command("REPLICAOF", "NO", "ONE")  # type: ignore[no-untyped-call]
    assert refused.verdict is Verdict.REFUSED and refused.detail.startswith("READONLY")
    assert await own_server.exists(keys.out) == 0
    assert (await publish(publisher, write(keys, entry_id, text_frames(1, 1)))).verdict is Verdict.WRITTEN


@pytest.mark.parametrize(
    ("squat", "where"),
    [("hash-at-result", "result"), ("string-at-result", "result"), ("string-at-out", "out")],
)
async def test_a_wrong_typed_key_refuses_the_ending_then_fails_it_writing_only_what_fits(
    real_redis: Redis, squat: str, where: str
) -> None:
    publisher = await publisher_on(real_redis)
    keys, entry_id = await claim(real_redis, squat)
    key = keys.result if where == "result" else keys.out
    if squat.startswith("hash"):
        await real_redis.hset(key, mapping={"x": "1"})  # type: ignore[misc]
    else:
        await real_redis.set(key, "not an outcome")
    ending = write(keys, entry_id, (*text_frames(1, 2), Frame(3, FrameKind.OUTPUT, {})), completed(2))
    refused = await publish(publisher, ending)
    assert refused.verdict is Verdict.WRONG_TYPE and key in refused.detail
    assert (await real_redis.xpending(keys.dispatch, GROUP))["pending"] == 1
    frames = (*text_frames(1, 2), Frame(3, FrameKind.ERROR, {"code": "wrong_type"}))
    assert (
        await publish(publisher, write(keys, entry_id, frames, failed("wrong_type", 2, wrong_type=True)))
    ).verdict is (Verdict.WRITTEN)
    assert (await real_redis.xpending(keys.dispatch, GROUP))["pending"] == 0
    assert [d[b"reason"] for _, d in await real_redis.xrange(SPACE.dead)] == [b"wrong_type"]
    if where == "out":  # frames can't go to O(M); the failed outcome does go to R(M)
        assert await real_redis.get(keys.out) == b"not an outcome"
        outcome = await read_outcome(real_redis, squat)
        assert outcome is not None and outcome.error is not None and outcome.error["code"] == "wrong_type"
    else:  # the squatted R(M) is left as it is; the frames are written
        assert await real_redis.type(keys.result) in (b"hash", b"string")
        assert [f.kind for f in await read_frames(real_redis, squat)][-1] is FrameKind.ERROR


async def test_frames_into_a_wrong_typed_out_are_refused(real_redis: Redis) -> None:
    publisher = await publisher_on(real_redis)
    keys, entry_id = await claim(real_redis, "squatted")
    await real_redis.set(keys.out, "x")
    verdict = await publish(publisher, write(keys, entry_id, text_frames(1, 2)))
    assert verdict.verdict is Verdict.WRONG_TYPE and "WRONGTYPE" in verdict.detail


async def test_an_ending_with_events_after_its_terminal_event_is_refused(real_redis: Redis) -> None:
    publisher = await publisher_on(real_redis)
    keys, entry_id = await claim(real_redis, "trailing")
    await real_redis.xadd(keys.events, {"e": b'{"event":"message-finish"}'}, id="0-2")
    batch = write(keys, entry_id, (Frame(1, FrameKind.OUTPUT, {}),), completed(0, terminal_id=b"0-2"))
    await real_redis.xadd(keys.events, {"e": b'{"event":"message-finish"}'}, id="0-3")  # after the end
    verdict = await publish(publisher, batch)
    assert verdict.verdict is Verdict.AFTER_TERMINAL and "0-3" in verdict.detail
    assert await real_redis.exists(keys.out, keys.result) == 0
    # Without the trailing entry the same ending commits.
    await real_redis.xdel(keys.events, "0-3")
    assert (await publish(publisher, batch)).verdict is Verdict.WRITTEN


async def test_a_flushed_script_is_loaded_again_and_notices_go_out_once(real_redis: Redis) -> None:
    publisher = await publisher_on(real_redis)
    keys, entry_id = await claim(real_redis, "reloaded")
    await real_redis.script_flush()
    pubsub = real_redis.pubsub()
    await pubsub.subscribe(SPACE.notices)
    started = (lifecycle_notice("reloaded", "started"),)
    batch = Batch((MessageWrite(NOBODY, keys, entry_id, text_frames(1, 1), None),), started, None)
    assert [v.verdict for v in await publisher.publish(batch)] == [Verdict.WRITTEN]
    await publisher.publish(Batch((), (lifecycle_notice("marker", "started", "run-1"),), None))
    notices = await collect_pubsub(pubsub, done=lambda got: any(b"marker" in p for _, p in got))
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    assert [payload for _, payload in notices if b"reloaded" in payload] == [
        b'{"message_id":"reloaded","status":"started"}'
    ]
    assert notices[-1][1] == b'{"message_id":"marker","status":"started","run_id":"run-1"}'  # v1.1


async def test_on_a_cluster_dead_letters_follow_only_written_commits(real_redis: Redis) -> None:
    publisher = await publisher_on(real_redis, dead_letters_in_script=False)
    mine, my_entry = await claim(real_redis, "mine")
    theirs, their_entry = await claim(real_redis, "theirs", owner="thief")
    error = (Frame(1, FrameKind.ERROR, {}),)
    verdicts = await publisher.publish(
        Batch(
            (
                MessageWrite(NOBODY, mine, my_entry, error, failed("gap", 0)),
                MessageWrite(NOBODY, theirs, their_entry, error, failed("gap", 0)),
            ),
            (),
            None,
        )
    )
    assert [v.verdict for v in verdicts] == [Verdict.WRITTEN, Verdict.LOST]
    assert [d[b"m"] for _, d in await real_redis.xrange(SPACE.dead)] == [b"mine"]
