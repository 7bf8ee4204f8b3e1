"""The live multiplexer on a real redis-server: many channels on one connection, and a dropped
connection opened again with every channel subscribed and every subscriber told of the gap."""

from __future__ import annotations

from functools import partial

from redis.asyncio import Redis

from lcstream.worker.gateway.live_mux import LiveMux, MuxSubscription
from tests.helpers import wait_for

CHANNELS = 50


async def pubsub_connections(redis: Redis) -> int:
    return len(await redis.client_list(_type="pubsub"))


async def subscribers(redis: Redis, channel: str) -> int:
    ((_, count),) = await redis.pubsub_numsub(channel)
    return int(count)


async def next_payload(subscription: MuxSubscription) -> bytes | None:
    return await subscription.get(timeout_s=5)


async def test_many_channels_share_one_connection_and_each_gets_its_own_payloads(real_redis: Redis) -> None:
    mux = LiveMux(real_redis)
    names = [f"live-{i}" for i in range(CHANNELS)]
    subscriptions = [await mux.open(real_redis, name) for name in names]
    try:
        assert await pubsub_connections(real_redis) == 1
        assert mux.channels == CHANNELS
        for name in reversed(names):
            assert await real_redis.publish(name, f"to {name}") == 1
        for name, subscription in zip(names, subscriptions, strict=True):
            assert await next_payload(subscription) == f"to {name}".encode()
        twice = await mux.open(real_redis, names[0])  # a second subscriber of a channel: no new SUBSCRIBE
        await real_redis.publish(names[0], "both")
        assert await next_payload(twice) == await next_payload(subscriptions[0]) == b"both"
        await twice.aclose()
        for subscription in subscriptions[: CHANNELS // 2]:
            await subscription.aclose()
        await wait_for(
            lambda: _none_subscribed(real_redis, names[: CHANNELS // 2]),
            what="the channels left unsubscribed",
        )
        assert mux.channels == CHANNELS - CHANNELS // 2
        assert await subscribers(real_redis, names[-1]) == 1
    finally:
        await mux.aclose()
    await wait_for(lambda: _pubsub_connections_are(real_redis, 0), what="the connection closed")


async def test_a_killed_connection_comes_back_subscribed_and_reports_the_gap(real_redis: Redis) -> None:
    mux = LiveMux(real_redis)
    names = [f"gap-{i}" for i in range(5)]
    subscriptions = [await mux.open(real_redis, name) for name in names]
    try:
        assert await real_redis.client_kill_filter(_type="pubsub") == 1
        for subscription in subscriptions:  # None: frames may have been missed, re-read O(M)
            assert await next_payload(subscription) is None
        for name in names:
            await wait_for(partial(_subscribed, real_redis, name), what=f"{name} subscribed again")
        assert await pubsub_connections(real_redis) == 1
        for name, subscription in zip(names, subscriptions, strict=True):
            await real_redis.publish(name, "after")
            assert await next_payload(subscription) == b"after"
        late = await mux.open(real_redis, "gap-late")  # a channel joined after the reconnect
        await real_redis.publish("gap-late", "late")
        assert await next_payload(late) == b"late"
    finally:
        await mux.aclose()


async def _none_subscribed(redis: Redis, names: list[str]) -> bool:
    return [await subscribers(redis, name) for name in names] == [0] * len(names)


async def _subscribed(redis: Redis, name: str) -> bool:
    return await subscribers(redis, name) == 1


async def _pubsub_connections_are(redis: Redis, count: int) -> bool:
    return await pubsub_connections(redis) == count
