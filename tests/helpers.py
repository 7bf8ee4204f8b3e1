"""Helpers shared by the worker and integration tests: oracles and waiting on conditions."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.typing import EncodableT, FieldT

from lcstream.config import Settings, load_settings
from lcstream.streams.cluster import RedisClient
from lcstream.streams.frames import Frame, FrameKind
from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import read_frames
from lcstream.worker.engine.runner import Worker
from tests.fixtures.conformance import expected_of

DELTA_KINDS = {
    FrameKind.TEXT: "text_deltas",
    FrameKind.REASONING: "reasoning_deltas",
    FrameKind.TOOL_CALL_CHUNK: "tool_call_chunks",
}


async def in_process_oracle(events: Sequence[dict[str, Any]], message_id: str) -> dict[str, Any]:
    """What langchain-core's own stream makes of `events`, read through its public API (the deltas of
    each projection, then `output`, or `error` for a failed stream), as the fixtures' `expected`."""
    return await expected_of(message_id, events)


def deltas_of(frames: Sequence[Frame]) -> dict[str, list[Any]]:
    """The frames' deltas grouped like the fixtures' `expected`."""
    grouped: dict[str, list[Any]] = {name: [] for name in DELTA_KINDS.values()}
    for frame in frames:
        if frame.kind in DELTA_KINDS:
            grouped[DELTA_KINDS[frame.kind]].append(frame.data)
    return grouped


async def assert_frames_match(
    redis: RedisClient, message_id: str, expected: dict[str, Any], keyspace: Keyspace | None = None
) -> list[Frame]:
    """O(M) holds seqs 1..n, starts with `start`, has the expected deltas and ends as expected."""
    frames = await read_frames(redis, message_id, keyspace)
    assert [f.seq for f in frames] == list(range(1, len(frames) + 1))
    assert frames[0].kind is FrameKind.START
    assert deltas_of(frames) == {k: expected[k] for k in DELTA_KINDS.values()}
    if "output" in expected:
        assert frames[-1].kind is FrameKind.OUTPUT
        assert frames[-1].data == expected["output"]
    else:
        assert frames[-1].kind is FrameKind.ERROR
        assert frames[-1].data["message"] == expected["error"]
    return frames


async def wait_for(
    condition: Callable[[], Awaitable[bool]], *, timeout_s: float = 30.0, what: str = "condition"
) -> None:
    """Poll `condition` until true; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)


async def collect_pubsub(
    pubsub: PubSub, *, done: Callable[[list[tuple[bytes, bytes]]], bool], timeout_s: float = 10.0
) -> list[tuple[bytes, bytes]]:
    """Gather published (channel, payload) pairs until `done(pairs)`; fail after `timeout_s`."""
    received: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + timeout_s
    while not done(received):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s; got {len(received)} messages")
        message = await pubsub.get_message(timeout=0.2)
        if message is not None and message["type"] in ("message", "pmessage"):
            received.append((message["channel"], message["data"]))
    return received


def settings_for(**overrides: Any) -> Settings:
    """Worker settings for in-process tests: a fixed consumer name, short blocks."""
    base: dict[str, Any] = {"consumer": "test-worker", "block_ms": 50, "socket_timeout_s": 5}
    return load_settings(**{**base, **overrides})


async def run_burst(redis: Redis, **overrides: Any) -> Worker:
    """Run an in-process worker until nothing is open or waiting."""
    worker = Worker(redis, settings_for(**overrides))
    await asyncio.wait_for(worker.run(until_idle=True), timeout=60)
    return worker


@asynccontextmanager
async def running_worker(redis: Redis, **overrides: Any) -> AsyncIterator[Worker]:
    """An in-process worker serving in the background; stopped (with its grace period) on exit."""
    worker = Worker(redis, settings_for(**overrides))
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await task


async def wait_until_open(worker: Worker, count: int, *, what: str = "") -> None:
    """Wait until `worker` holds exactly `count` messages."""

    async def holds() -> bool:
        return worker.open_messages == count

    await wait_for(holds, timeout_s=10, what=what or f"the worker to hold {count} messages")


async def all_outcomes(
    redis: RedisClient, message_ids: Sequence[str], keyspace: Keyspace | None = None
) -> bool:
    """Whether every message has an outcome in `R(M)`."""
    space = keyspace or Keyspace()
    return all([await redis.exists(space.message(m).result) for m in message_ids])


async def write_events(
    redis: RedisClient, message_id: str, events: Sequence[dict[str, Any]], *, first: int = 1, **fields: str
) -> None:
    """XADD `events` into E(M) at ids `0-first`, ... without announcing them (a producer that hasn't yet,
    or a test building a message by hand); `fields` are added to every entry."""
    keys = Keyspace().message(message_id)
    for n, event in enumerate(events, start=first):
        entry: dict[FieldT, EncodableT] = {"e": json.dumps(event)}
        entry.update(fields.items())
        await redis.xadd(keys.events, entry, id=f"0-{n}")
