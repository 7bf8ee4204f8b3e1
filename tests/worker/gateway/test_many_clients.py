"""2,000 SSE clients on 1,000 messages: the gateway's Redis connections stay fixed, every client of a
message gets all its frames, every client of an unknown id gets 404 within the documented wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import orjson
from redis.asyncio import Redis

from lcstream.streams.producer import StreamProducer
from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_frames
from tests import procfs
from tests.conftest import RedisServer, WorkerProcess
from tests.helpers import wait_for
from tests.worker.gateway.conftest import SpawnGateway
from tests.worker.gateway.support import metric, raw_get, text_events

EXISTING, UNKNOWN, CLIENTS_PER_MESSAGE = 500, 500, 3  # 1,500 + 500 = 2,000 clients, 1,000 messages
WAIT_FOR_START_S = 2.0
NOT_FOUND_SLACK_S = 5.0  # on top of the wait: 2,000 connections arrive at once on a 2-core machine
# app.py's pool, which the live multiplexer's and the notices' pub/sub connections come from too.
MAX_REDIS_CONNECTIONS = 8


def frame_ids(body: bytes) -> list[int]:
    """The ids of the `frame` events of an SSE body."""
    ids: list[int] = []
    for event in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in event.splitlines() if ": " in line)
        if fields.get("event") == "frame":
            ids.append(int(fields["id"]))
    return ids


async def test_2000_clients_on_1000_messages_over_a_fixed_number_of_redis_connections(
    real_redis: Redis,
    redis_server: RedisServer,
    spawn_worker: Callable[..., WorkerProcess],
    spawn_gateway: SpawnGateway,
) -> None:
    gateway = await spawn_gateway(
        LCSTREAM_GATEWAY_MAX_CLIENT_STREAMS="5000",  # every client comes from 127.0.0.1
        LCSTREAM_GATEWAY_WAIT_FOR_START_S=str(WAIT_FOR_START_S),
    )
    spawn_worker()
    existing = [f"many-{i}" for i in range(EXISTING)]
    events = {m: text_events(m, [f"{m} ", "says ", "hello"]) for m in existing}
    # Half of them end before the clients come (they catch up from O(M)); the other half has only
    # begun (its clients follow it live through the shared pub/sub connection).
    ended, live = existing[: EXISTING // 2], existing[EXISTING // 2 :]
    for message_id in ended:
        await publish_events(real_redis, events[message_id])
    producers = {m: StreamProducer(real_redis, m) for m in live}
    for message_id, producer in producers.items():
        await producer.send(events[message_id][0])
        await producer.flush()

    peak = 0

    async def sample_connections() -> None:
        nonlocal peak
        while True:
            peak = max(peak, procfs.tcp_connections_to(gateway.process.pid, redis_server.port))
            await asyncio.sleep(0.05)  # a sampling period, not a synchronisation

    sampler = asyncio.create_task(sample_connections())
    started = time.monotonic()
    watchers = {
        (m, n): asyncio.create_task(raw_get(gateway.port, f"/v1/messages/{m}/stream"))
        for m in existing
        for n in range(CLIENTS_PER_MESSAGE)
    }
    strangers = {
        m: asyncio.create_task(raw_get(gateway.port, f"/v1/messages/{m}/stream"))
        for m in (f"ghost-{i}" for i in range(UNKNOWN))
    }
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        await wait_for(
            lambda: _sse_clients_at_least(client, len(live) * CLIENTS_PER_MESSAGE),
            timeout_s=120, what="the clients of the live messages connected",
        )  # fmt: skip
        for message_id, producer in producers.items():
            for event in events[message_id][1:]:
                await producer.send(event)
            await producer.aclose()
        results = await asyncio.wait_for(asyncio.gather(*watchers.values()), 180)
        not_found = await asyncio.wait_for(asyncio.gather(*strangers.values()), 60)
        elapsed_s = time.monotonic() - started
        readers_started = await metric(client, "lcstream_gateway_readers_started_total")
    sampler.cancel()

    expected = {m: [f.seq for f in await read_frames(real_redis, m)] for m in existing}
    for (message_id, _), (status, body, _) in zip(watchers, results, strict=True):
        assert status == 200, (message_id, body[:300])
        assert frame_ids(body) == expected[message_id], message_id
        assert len(expected[message_id]) >= 5  # start, three texts, output
    for message_id, (status, body, answered_s) in zip(strangers, not_found, strict=True):
        assert status == 404, (message_id, body[:300])
        assert orjson.loads(body)["error"]["code"] == "not_found"
        assert WAIT_FOR_START_S <= answered_s <= WAIT_FOR_START_S + NOT_FOUND_SLACK_S, answered_s
    answer_times = sorted(answered_s for _, _, answered_s in not_found)
    assert 1 <= peak <= MAX_REDIS_CONNECTIONS, peak
    print(
        f"\n{len(watchers) + len(strangers)} clients on {EXISTING + UNKNOWN} messages: done in "
        f"{elapsed_s:.1f} s; gateway Redis connections peak {peak}; readers started {readers_started:.0f}; "
        f"404 after {answer_times[len(answer_times) // 2]:.2f} s (median), {answer_times[-1]:.2f} s (slowest)"
    )


async def _sse_clients_at_least(client: httpx.AsyncClient, count: int) -> bool:
    return await metric(client, "lcstream_gateway_sse_clients") >= count
