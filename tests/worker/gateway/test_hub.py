"""The hub on fakeredis: one reader per message, bounded client queues, cut-offs, joining at the head."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from lcstream.streams.frames import Frame, FrameKind
from lcstream.streams.keys import Keyspace
from lcstream.worker.gateway.hub import ClientFeed, HubRegistry
from lcstream.worker.gateway.live_mux import LiveMux
from lcstream.worker.gateway.metrics import GatewayMetrics
from lcstream.worker.gateway.sse_format import EncodedFrame, encode_frame
from tests.helpers import wait_for

MESSAGE = "hub-test"


async def emit(redis: Redis, seq: int, kind: FrameKind = FrameKind.TEXT, data: object = "x") -> None:
    """What the worker does for one frame: XADD to O(M), then PUBLISH on L(M)."""
    keys = Keyspace().message(MESSAGE)
    frame = Frame(seq, kind, data)
    await redis.xadd(keys.out, {"f": frame.body_json()}, id=f"0-{seq}")
    await redis.publish(keys.live, frame.live_json())


async def drain(feed: ClientFeed) -> list[int]:
    seqs: list[int] = []
    while (frame := await feed.next()) is not None:
        seqs.append(frame.seq)
    return seqs


def test_a_feed_holds_at_most_its_capacity_and_skips_what_the_client_has() -> None:
    feed = ClientFeed(after=2, capacity=2)
    frames = [encode_frame(Frame(seq, FrameKind.TEXT, "t")) for seq in range(1, 6)]
    assert [feed.offer(f) for f in frames] == [True, True, True, True, False]
    assert [f.seq for f in feed._frames] == [3, 4]


async def test_one_reader_feeds_every_client_and_a_full_one_is_cut_off(fake_redis: Redis) -> None:
    metrics = GatewayMetrics()
    live = LiveMux(fake_redis)
    hubs = HubRegistry(fake_redis, Keyspace(), metrics, live=live, capacity=10)
    fast, slow = ClientFeed(0, capacity=100), ClientFeed(0, capacity=3)
    cut = asyncio.Event()
    slow.on_cut = cut.set
    assert hubs.join(MESSAGE, fast) and hubs.join(MESSAGE, slow)
    assert hubs.active == 1
    received = asyncio.create_task(drain(fast))
    await wait_for(_subscribed(fake_redis), what="the reader's subscription")
    assert sample(metrics, "readers_started_total") == 1
    for seq in range(1, 10):
        await emit(fake_redis, seq)
    await emit(fake_redis, 10, FrameKind.OUTPUT, {"type": "ai"})
    assert await asyncio.wait_for(received, 10) == list(range(1, 11))
    assert cut.is_set() and sample(metrics, "clients_cut_total") == 1
    await wait_for(_no_readers(hubs, metrics), what="the reader to end after the terminal frame")
    await hubs.aclose()
    await live.aclose()


async def test_a_client_behind_the_head_must_catch_up_before_it_joins(fake_redis: Redis) -> None:
    metrics = GatewayMetrics()
    live = LiveMux(fake_redis)
    hubs = HubRegistry(fake_redis, Keyspace(), metrics, live=live, capacity=10)
    first = ClientFeed(0, capacity=100)
    assert hubs.join(MESSAGE, first)
    await wait_for(_subscribed(fake_redis), what="the reader's subscription")
    for seq in range(1, 6):
        await emit(fake_redis, seq)
    got: list[EncodedFrame] = []
    while len(got) < 5:
        frame = await asyncio.wait_for(first.next(), 5)
        assert frame is not None
        got.append(frame)
    assert not hubs.join(MESSAGE, ClientFeed(2, capacity=100))  # frames 3..5 would be missing
    assert hubs.join(MESSAGE, ClientFeed(5, capacity=100))
    assert sample(metrics, "readers_started_total") == 1
    await hubs.aclose()
    await live.aclose()
    assert sample(metrics, "readers") == 0


def sample(metrics: GatewayMetrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(f"lcstream_gateway_{name}")


def _subscribed(redis: Redis) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        ((_, count),) = await redis.pubsub_numsub(Keyspace().message(MESSAGE).live)
        return int(count) == 1

    return check


def _no_readers(hubs: HubRegistry, metrics: GatewayMetrics) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return hubs.active == 0 and sample(metrics, "readers") == 0

    return check
