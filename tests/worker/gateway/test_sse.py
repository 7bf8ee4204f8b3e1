"""SSE through a real `lcstream serve` and `lcstream worker`: fan-out, resuming, snapshots."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis

from lcstream.streams.frames import FrameKind
from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import read_frames
from lcstream.streams.snapshot import Snapshot
from tests.conftest import WorkerProcess
from tests.faults.support import Gate, message_events, stream_message
from tests.helpers import wait_for
from tests.worker.gateway.conftest import SpawnGateway
from tests.worker.gateway.support import (
    frames_of,
    live_form,
    metric,
    read_all,
    snapshot_from,
    sse_events,
)

CLIENTS = 500


def workload(message_id: str, tokens: int) -> list[dict[str, Any]]:
    """Reasoning, `tokens` text tokens, a tool call and two parallel ones (workload shape 9)."""
    return message_events(message_id, 9, random.Random(9), tokens=tokens)


async def frame_count(redis: Redis, message_id: str) -> int:
    return int(await redis.xlen(Keyspace().message(message_id).out))


async def test_500_clients_share_one_reader_and_each_gets_every_frame_in_order(
    real_redis: Redis, spawn_worker: Callable[..., WorkerProcess], spawn_gateway: SpawnGateway
) -> None:
    gateway = await spawn_gateway(LCSTREAM_GATEWAY_MAX_CLIENT_STREAMS=str(CLIENTS))  # all from one address
    spawn_worker()
    message_id = "gw-fanout"
    live = Keyspace().message(message_id).live
    gate = Gate(at=20)
    producer = asyncio.create_task(
        stream_message(
            real_redis, message_id, workload(message_id, 150), pace_s=0, gate=gate, pace_after_gate_s=0.01
        )
    )
    await asyncio.wait_for(gate.reached.wait(), 10)
    limits = httpx.Limits(max_connections=CLIENTS + 10, max_keepalive_connections=20)
    async with httpx.AsyncClient(base_url=gateway.url, limits=limits, timeout=120) as client:
        started = time.monotonic()
        clients = [
            asyncio.create_task(read_all(client, f"/v1/messages/{message_id}/stream")) for _ in range(CLIENTS)
        ]
        await wait_for(
            lambda: _metric_is(client, "lcstream_gateway_sse_clients", CLIENTS),
            timeout_s=60, what=f"{CLIENTS} SSE clients connected",
        )  # fmt: skip
        # Redis' own count: one subscriber on L(M) however many clients are connected.
        await wait_for(
            lambda: _subscribers_are(real_redis, live, 1), timeout_s=10, what="the hub's subscription"
        )
        connected_s = time.monotonic() - started
        assert await frame_count(real_redis, message_id) < 60, "the clients must join mid-stream"
        gate.opened.set()
        await producer
        received = await asyncio.gather(*clients)
        elapsed_s = time.monotonic() - started
        assert await _subscribers_are(real_redis, live, 0)  # the reader left with the last client
        readers_started = await metric(client, "lcstream_gateway_readers_started_total")
        frames_sent = await metric(client, "lcstream_gateway_frames_sent_total")
        streams_served = await metric(
            client, "lcstream_gateway_requests_total", 'route="/v1/messages/{message_id}/stream",status="200"'
        )
    frames = await read_frames(real_redis, message_id)
    assert frames[-1].kind is FrameKind.OUTPUT
    expected = live_form(frames)
    for events in received:
        assert frames_of(events) == expected
    assert readers_started == 1
    assert frames_sent == CLIENTS * len(frames)
    assert streams_served == CLIENTS
    print(
        f"\n{CLIENTS} clients x {len(frames)} frames: "
        f"connected in {connected_s:.1f}s, all done in {elapsed_s:.1f}s"
    )


async def test_resuming_with_last_event_id_gives_exactly_the_frames_after_it(
    real_redis: Redis, spawn_worker: Callable[..., WorkerProcess], spawn_gateway: SpawnGateway
) -> None:
    gateway = await spawn_gateway()
    spawn_worker()
    message_id = "gw-resume"
    gate = Gate(at=40)
    producer = asyncio.create_task(
        stream_message(
            real_redis, message_id, workload(message_id, 80), pace_s=0, gate=gate, pace_after_gate_s=0.005
        )
    )
    await asyncio.wait_for(gate.reached.wait(), 10)
    await wait_for(lambda: _at_least(frame_count(real_redis, message_id), 30), what="30 frames")
    k = 7
    path = f"/v1/messages/{message_id}/stream"
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        # Mid-stream: frames 8..30 come from O(M), the rest live from the shared reader.
        mid_stream = asyncio.create_task(read_all(client, path, {"Last-Event-ID": str(k)}))
        await wait_for(lambda: _metric_is(client, "lcstream_gateway_sse_clients", 1), what="the client")
        gate.opened.set()
        await producer
        resumed_live = await mid_stream
        frames = await read_frames(real_redis, message_id)
        expected = live_form(frames)[k:]
        assert frames_of(resumed_live) == expected
        # After the end, from O(M) alone; `?after=` is the same for clients that can't set headers.
        assert frames_of(await read_all(client, path, {"Last-Event-ID": str(k)})) == expected
        assert frames_of(await read_all(client, f"{path}?after={k}")) == expected
        # EventSource reconnects to the URL it opened (?snapshot=1): the resume point wins, no snapshot.
        reconnected = await read_all(client, f"{path}?snapshot=1", {"Last-Event-ID": str(k)})
        assert frames_of(reconnected) == expected and len(reconnected) == len(expected)
        # Resuming at the terminal frame: 204, which makes EventSource stop reconnecting.
        assert (await client.get(path, headers={"Last-Event-ID": str(len(frames))})).status_code == 204
        assert (await client.get(path, headers={"Last-Event-ID": "x1"})).status_code == 400
        assert (await client.get(path, headers={"Last-Event-ID": str(len(frames) + 1)})).status_code == 400
        assert (await client.get("/v1/messages/bad%20id/stream")).status_code == 400


async def test_snapshot_mid_stream_and_the_frames_after_it_rebuild_the_message(
    real_redis: Redis, spawn_worker: Callable[..., WorkerProcess], spawn_gateway: SpawnGateway
) -> None:
    gateway = await spawn_gateway()
    spawn_worker()
    message_id = "gw-snapshot"
    events = workload(message_id, 40)
    # Hold the producer inside the first tool call, so the snapshot has half-written arguments.
    first_tool = next(i for i, e in enumerate(events) if b"tool_call" in orjson.dumps(e))
    gate = Gate(at=first_tool + 3)
    producer = asyncio.create_task(
        stream_message(real_redis, message_id, events, pace_s=0, gate=gate, pace_after_gate_s=0.005)
    )
    await asyncio.wait_for(gate.reached.wait(), 10)
    held = gate.at - 1  # events up to the gate produce frames up to the gate's last one

    async def tool_chunks_stored() -> bool:
        frames = await read_frames(real_redis, message_id)
        return sum(f.kind is FrameKind.TOOL_CALL_CHUNK for f in frames) >= 2 and len(frames) >= held // 2

    await wait_for(tool_chunks_stored, what="frames of the first tool call")
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        stream = sse_events(client, f"/v1/messages/{message_id}/stream?snapshot=1")
        first = await anext(stream)
        assert first.event == "snapshot"
        snapshot = snapshot_from(orjson.loads(first.data))
        assert snapshot.status == "streaming" and int(first.id) == snapshot.seq > 0
        assert snapshot.text and snapshot.reasoning and snapshot.tool_calls[0]["args"]
        gate.opened.set()
        rest = [event async for event in stream]
        await producer
    frames = await read_frames(real_redis, message_id)
    assert frames_of(rest) == live_form(frames)[snapshot.seq :]
    whole = Snapshot(message_id)
    for frame in frames:
        whole.apply(frame)
        if frame.seq > snapshot.seq:
            snapshot.apply(frame)
    assert snapshot.status == "completed"
    assert snapshot.to_dict() == whole.to_dict()


async def _metric_is(client: httpx.AsyncClient, name: str, value: float) -> bool:
    return await metric(client, name) == value


async def _subscribers_are(redis: Redis, channel: str, count: int) -> bool:
    ((_, subscribers),) = await redis.pubsub_numsub(channel)
    return int(subscribers) == count


async def _at_least(value: Any, floor: int) -> bool:
    return int(await value) >= floor


async def test_the_reader_stops_when_its_last_client_leaves_and_a_resume_starts_a_new_one(
    real_redis: Redis, spawn_worker: Callable[..., WorkerProcess], spawn_gateway: SpawnGateway
) -> None:
    gateway = await spawn_gateway()
    spawn_worker()
    message_id = "gw-leave"
    live = Keyspace().message(message_id).live
    gate = Gate(at=15)
    producer = asyncio.create_task(
        stream_message(real_redis, message_id, workload(message_id, 30), pace_s=0, gate=gate)
    )
    await asyncio.wait_for(gate.reached.wait(), 10)
    await wait_for(lambda: _at_least(frame_count(real_redis, message_id), 5), what="5 frames")
    path = f"/v1/messages/{message_id}/stream"
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        first, second = sse_events(client, path), sse_events(client, path)
        seen = [await anext(first), await anext(second)]
        await wait_for(lambda: _subscribers_are(real_redis, live, 1), what="the shared reader")
        assert await metric(client, "lcstream_gateway_readers") == 1
        await first.aclose()
        await wait_for(lambda: _metric_is(client, "lcstream_gateway_sse_clients", 1), what="one client left")
        assert await _subscribers_are(real_redis, live, 1)  # the other one still needs it
        await second.aclose()
        await wait_for(lambda: _metric_is(client, "lcstream_gateway_readers", 0), what="the reader stopped")
        await wait_for(lambda: _subscribers_are(real_redis, live, 0), what="its subscription gone")
        resumed = asyncio.create_task(read_all(client, path, {"Last-Event-ID": seen[1].id}))
        await wait_for(lambda: _metric_is(client, "lcstream_gateway_readers", 1), what="a new reader")
        gate.opened.set()
        await producer
        rest = await resumed
        assert await metric(client, "lcstream_gateway_readers_started_total") == 2
    frames = await read_frames(real_redis, message_id)
    assert frames_of(rest) == live_form(frames)[int(seen[1].id) :]
