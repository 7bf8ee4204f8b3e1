"""A run's hub on fakeredis: a reader that fails ends its streams and leaves the registry, so no client
waits on it and the next one starts a new reader."""

from __future__ import annotations

from redis.asyncio import Redis

from lcstream.streams.keys import Keyspace
from lcstream.worker.gateway.hub import ClientFeed
from lcstream.worker.gateway.live_mux import LiveMux
from lcstream.worker.gateway.run_hub import RunHubRegistry
from lcstream.worker.gateway.runs_api import hub_events
from lcstream.worker.gateway.sse_format import PREAMBLE
from tests.helpers import wait_for


async def test_a_failed_run_reader_ends_its_streams_and_leaves_the_registry(fake_redis: Redis) -> None:
    space = Keyspace()
    await fake_redis.set(space.run("broken-run").index, "not a stream")  # its reads fail: WRONGTYPE
    live = LiveMux(fake_redis)
    runs = RunHubRegistry(fake_redis, space, live=live, capacity=10)
    hub = runs.watch("broken-run")

    async def reader_failed() -> bool:
        return hub.ended

    await wait_for(reader_failed, what="the reader to fail")
    assert runs.existing("broken-run") is None  # the next client starts a new reader
    sent = [chunk async for chunk in hub_events(hub, ClientFeed(0, 10))]
    assert sent == [PREAMBLE]  # ended at once: nobody waits on a reader that is gone
    runs.leaver(hub)(ClientFeed(0, 10))
    await runs.aclose()
    await live.aclose()
