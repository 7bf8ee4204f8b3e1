"""attach(), subscribe(), read_snapshot() and result() against fakeredis and the real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from langchain_core.language_models.chat_model_stream import AsyncChatModelStream
from langchain_core.messages import message_to_dict
from pydantic import ValidationError
from redis.asyncio import Redis

from lcstream.config import load_settings
from lcstream.streams.attach import AttachedStream, attach
from lcstream.streams.errors import LcstreamError, MessageFailedError, MessageNotFoundError
from lcstream.streams.frames import Frame, FrameKind
from lcstream.streams.keys import Keyspace
from lcstream.streams.producer import StreamProducer
from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_frames
from lcstream.streams.result import result
from lcstream.streams.snapshot import read_snapshot
from lcstream.streams.subscribe import subscribe
from lcstream.worker.engine.runner import Worker
from tests.conftest import conformance_cases
from tests.helpers import run_burst, running_worker, wait_for, write_events

CASES = conformance_cases()
BY_NAME = {c["name"]: c for c in CASES}


async def consume(stream: AttachedStream) -> dict[str, Any]:
    """Read the stream through its public API, projections concurrently, like an in-process caller."""
    got: dict[str, Any] = {"text_deltas": [], "reasoning_deltas": [], "tool_call_chunks": []}

    async def drain(name: str, projection: Any) -> None:
        async for delta in projection:
            got[name].append(delta)

    try:
        await asyncio.gather(
            drain("text_deltas", stream.text),
            drain("reasoning_deltas", stream.reasoning),
            drain("tool_call_chunks", stream.tool_calls),
        )
        got["output"] = message_to_dict(await stream.output)
    except (RuntimeError, LcstreamError, ValidationError) as exc:
        got["error"] = str(exc)
    return got


async def collect(frames: AsyncIterator[Frame]) -> list[Frame]:
    return [frame async for frame in frames]


def expected_view(case: dict[str, Any]) -> dict[str, Any]:
    keys = [
        "text_deltas",
        "reasoning_deltas",
        "tool_call_chunks",
        "output" if "output" in case["expected"] else "error",
    ]
    return {k: case["expected"][k] for k in keys}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
async def test_attach_live_before_the_producer_starts(any_redis: Redis, case: dict[str, Any]) -> None:
    stream = attach(any_redis, case["message_id"], block_ms=50)
    consumer = asyncio.create_task(consume(stream))
    await asyncio.sleep(0)  # let the consumer start pulling before anything exists
    await publish_events(any_redis, case["events"])
    assert await asyncio.wait_for(consumer, timeout=30) == expected_view(case)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
async def test_attach_replays_a_stored_message(any_redis: Redis, case: dict[str, Any]) -> None:
    await publish_events(any_redis, case["events"])
    stream = attach(any_redis, case["message_id"], block_ms=50)
    assert await asyncio.wait_for(consume(stream), timeout=30) == expected_view(case)


async def test_attach_reads_only_when_a_consumer_needs_more(any_redis: Redis) -> None:
    case = BY_NAME["long_text_2000_tokens"]
    await publish_events(any_redis, case["events"])
    stream = attach(any_redis, case["message_id"], block_ms=50, read_count=100)
    iterator = aiter(stream.text)
    first = await anext(iterator)
    assert first == case["expected"]["text_deltas"][0]
    # One read of 100 events; the rest stays in Redis until the consumer catches up.
    assert len(stream.text._deltas) <= 100
    rest = [delta async for delta in iterator]
    assert [first, *rest] == case["expected"]["text_deltas"]


async def test_attach_sees_a_failure_written_by_the_worker(real_redis: Redis) -> None:
    async with StreamProducer(real_redis, "goes-silent") as producer:
        for event in BY_NAME["plain_text"]["events"][:4]:
            await producer.send(event)
    worker = Worker(real_redis, load_settings(consumer="w", block_ms=50, idle_timeout_s=1))
    task = asyncio.create_task(worker.run())
    try:
        got = await asyncio.wait_for(consume(attach(real_redis, "goes-silent", block_ms=100)), timeout=20)
    finally:
        worker.stop()
        await task
    assert "idle_timeout" in got["error"]


async def test_attach_fails_with_a_dispatch_error_after_what_came_before_as_in_process(
    any_redis: Redis,
) -> None:
    """langchain-core's own cache-hit replay ends with usage its `AIMessage` refuses: `dispatch()`
    raises. The in-process driver then fails the stream with that error; so must an attached one."""
    events = [*BY_NAME["plain_text"]["events"][:-1], {"event": "message-finish", "usage": {"total_cost": 0}}]
    await write_events(any_redis, "refused-finish", events)
    in_process = AsyncChatModelStream(message_id="refused-finish")
    for event in events:
        try:
            in_process.dispatch(event)
        except ValidationError as exc:  # what `astream_events(version="v3")`'s driver does
            in_process.fail(exc)
    expected = await consume(cast(AttachedStream, in_process))

    got = await asyncio.wait_for(consume(attach(any_redis, "refused-finish", block_ms=50)), timeout=10)
    assert got == expected
    assert len(got["text_deltas"]) == len(BY_NAME["plain_text"]["expected"]["text_deltas"])
    assert "validation error" in got["error"] and "output" not in got


async def test_attach_fails_a_message_with_events_after_its_end_as_a_worker_does(any_redis: Redis) -> None:
    events = BY_NAME["plain_text"]["events"]
    await write_events(any_redis, "two-ends", [*events, events[-1]])
    got = await asyncio.wait_for(consume(attach(any_redis, "two-ends", block_ms=50)), timeout=10)
    assert got["text_deltas"] == BY_NAME["plain_text"]["expected"]["text_deltas"]
    assert got["error"].startswith("after_terminal") and "output" not in got


async def test_following_past_the_end_of_an_ended_message_returns_at_once(real_redis: Redis) -> None:
    case = BY_NAME["plain_text"]
    await publish_events(real_redis, case["events"])
    await run_burst(real_redis)
    last = len(await read_frames(real_redis, case["message_id"]))
    snapshot = await read_snapshot(real_redis, case["message_id"])
    assert snapshot.seq == last and snapshot.status == "completed"
    for after in (last, snapshot.seq, last + 50):  # the README's late joiner: snapshot, then subscribe
        frames = subscribe(real_redis, case["message_id"], after=after, quiet_check_s=30)
        assert await asyncio.wait_for(collect(frames), timeout=2) == []


async def test_followers_of_a_message_that_does_not_exist_say_so_within_their_bound(any_redis: Redis) -> None:
    for follower in (
        collect(subscribe(any_redis, "no-such", wait_for_start_s=0.2, quiet_check_s=0.05)),
        result(any_redis, "no-such", wait_for_start_s=0.2, poll_s=0.05),
        attach(any_redis, "no-such", block_ms=50, wait_for_start_s=0.2).output,
    ):
        with pytest.raises(MessageNotFoundError, match="no-such"):
            await asyncio.wait_for(follower, timeout=5)


async def test_a_follower_told_to_wait_sees_a_producer_that_starts_late(real_redis: Redis) -> None:
    case = BY_NAME["plain_text"]
    message_id, live = case["message_id"], Keyspace().message(case["message_id"]).live
    follower = asyncio.create_task(
        collect(subscribe(real_redis, message_id, wait_for_start_s=None, quiet_check_s=0.05))
    )

    async def following() -> bool:
        [(_, subscribers)] = await real_redis.pubsub_numsub(live)
        return bool(subscribers)

    async with running_worker(real_redis):
        await wait_for(following, what="the follower to wait for the message")
        await publish_events(real_redis, case["events"])
        frames = await asyncio.wait_for(follower, timeout=20)
    assert frames == await read_frames(real_redis, case["message_id"])


async def test_attach_gives_up_on_a_message_that_never_appears(any_redis: Redis) -> None:
    stream = attach(any_redis, "nobody", block_ms=50, wait_for_start_s=0.2)
    with pytest.raises(MessageNotFoundError):
        await asyncio.wait_for(stream.output, timeout=10)


async def test_attach_aclose_ends_waiting_consumers(any_redis: Redis) -> None:
    async with attach(any_redis, "never", block_ms=50) as stream:
        waiting = asyncio.create_task(consume(stream))
        await asyncio.sleep(0.1)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, timeout=5)


async def run_worker_until(redis: Redis, *message_ids: str) -> None:
    worker = Worker(redis, load_settings(consumer="w", block_ms=50))
    await asyncio.wait_for(worker.run(until_idle=True), timeout=30)


async def test_subscribe_catches_up_then_follows_live_without_gap_or_duplicate(real_redis: Redis) -> None:
    case = BY_NAME["plain_text"]
    events = case["events"]
    worker = Worker(real_redis, load_settings(consumer="w", block_ms=50))
    worker_task = asyncio.create_task(worker.run())
    try:
        async with StreamProducer(real_redis, case["message_id"]) as producer:
            for event in events[:20]:
                await producer.send(event)
            await producer.flush()

            async def some_frames() -> bool:
                return len(await read_frames(real_redis, case["message_id"])) >= 10

            await wait_for(some_frames, timeout_s=10, what="the first frames")
            collected = asyncio.create_task(_collect(subscribe(real_redis, case["message_id"])))
            for event in events[20:]:
                await producer.send(event)
                await asyncio.sleep(0.002)
        frames = await asyncio.wait_for(collected, timeout=20)
    finally:
        worker.stop()
        await worker_task
    assert frames == await read_frames(real_redis, case["message_id"])
    assert frames[-1].kind is FrameKind.OUTPUT


async def _collect(frames: Any) -> list[Frame]:
    return [frame async for frame in frames]


@pytest.mark.parametrize("after", [0, 1, 7, 40])
async def test_subscribe_resumes_after_any_seq(real_redis: Redis, after: int) -> None:
    case = BY_NAME["plain_text"]
    await publish_events(real_redis, case["events"])
    await run_worker_until(real_redis)
    stored = await read_frames(real_redis, case["message_id"])
    frames = await asyncio.wait_for(_collect(subscribe(real_redis, case["message_id"], after=after)), 10)
    assert frames == stored[after:]


async def test_snapshot_then_subscribe_rebuilds_the_message(real_redis: Redis) -> None:
    case = BY_NAME["parallel_tool_calls"]
    await publish_events(real_redis, case["events"])
    await run_worker_until(real_redis)
    stored = await read_frames(real_redis, case["message_id"])
    snapshot = await read_snapshot(real_redis, case["message_id"])
    assert snapshot.seq == len(stored) and snapshot.status == "completed"
    calls = case["expected"]["output"]["data"]["tool_calls"]
    assert [c["name"] for c in snapshot.to_dict()["tool_calls"]] == [c["name"] for c in calls]
    assert snapshot.output == case["expected"]["output"]


async def test_result_waits_for_the_outcome(real_redis: Redis) -> None:
    ok, bad = BY_NAME["single_tool_call"], BY_NAME["error_mid_stream"]
    waiting = asyncio.create_task(result(real_redis, ok["message_id"], timeout_s=20, poll_s=5))
    failing = asyncio.create_task(result(real_redis, bad["message_id"], timeout_s=20, poll_s=5))
    await asyncio.sleep(0.05)
    for case in (ok, bad):
        await publish_events(real_redis, case["events"])
    await run_worker_until(real_redis)
    message = await asyncio.wait_for(waiting, 10)
    assert message_to_dict(message) == ok["expected"]["output"]
    with pytest.raises(MessageFailedError) as failure:
        await asyncio.wait_for(failing, 10)
    assert (failure.value.code, failure.value.error_message) == ("overloaded", "provider overloaded")


async def test_result_times_out(any_redis: Redis) -> None:
    with pytest.raises(TimeoutError):
        await result(any_redis, "never-finishes", timeout_s=0.3, poll_s=0.1)
