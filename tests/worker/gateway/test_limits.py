"""The gateway's bounds over HTTP: streams per client (429), messages streamed at once (503), and the
bounded wait for a message nothing is known of (404)."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis

from lcstream.config import load_settings
from lcstream.streams.producer import StreamProducer
from lcstream.streams.tokens import mint_read_token
from tests.conftest import RedisServer
from tests.helpers import wait_for
from tests.worker.gateway.support import metric, serve_in_process, text_events

KEY = "limits-signing-key-0123456789abcdef"
OPERATOR = "limits-operator-token-0123456789"


async def begin(redis: Redis, message_id: str) -> StreamProducer:
    """A message that has started and stays open: its streams hold until the test ends."""
    producer = StreamProducer(redis, message_id)
    await producer.send(text_events(message_id, ["x"])[0])
    await producer.flush()
    return producer


async def open_stream(
    stack: AsyncExitStack, client: httpx.AsyncClient, path: str, **kwargs: Any
) -> httpx.Response:
    return await stack.enter_async_context(client.stream("GET", path, **kwargs))


async def test_a_client_holds_at_most_its_share_of_streams(
    real_redis: Redis, redis_server: RedisServer
) -> None:
    settings = load_settings(
        redis_url=redis_server.url, gateway_token_keys=KEY, gateway_operator_token=OPERATOR,
        gateway_max_client_streams=2,
    )  # fmt: skip
    await begin(real_redis, "lim-a")
    token = mint_read_token("lim-a", key=KEY, ttl_s=60)
    async with serve_in_process(settings) as client, AsyncExitStack() as stack:
        for _ in range(2):  # two browsers holding the same token
            assert (
                await open_stream(stack, client, f"/v1/messages/lim-a/stream?token={token}")
            ).status_code == 200
        third = await open_stream(stack, client, f"/v1/messages/lim-a/stream?token={token}")
        assert third.status_code == 429 and third.headers["retry-after"] == "5"
        assert orjson_code(await third.aread()) == "too_many_streams"
        operator = {"Authorization": f"Bearer {OPERATOR}"}  # counted by its address, not the token
        assert (
            await open_stream(stack, client, "/v1/messages/lim-a/stream", headers=operator)
        ).status_code == 200
    async with serve_in_process(settings) as client, AsyncExitStack() as stack:
        for _ in range(2):  # streams that ended gave their places back
            assert (
                await open_stream(stack, client, f"/v1/messages/lim-a/stream?token={token}")
            ).status_code == 200


async def test_past_max_readers_a_new_message_gets_503_while_watched_ones_stay_open(
    real_redis: Redis, redis_server: RedisServer
) -> None:
    settings = load_settings(redis_url=redis_server.url, gateway_max_readers=1)
    await begin(real_redis, "busy-a")
    await begin(real_redis, "busy-b")
    async with serve_in_process(settings) as client, AsyncExitStack() as stack:
        assert (await open_stream(stack, client, "/v1/messages/busy-a/stream")).status_code == 200
        await wait_for(lambda: _readers_are(client, 1), what="busy-a's reader")
        refused = await open_stream(stack, client, "/v1/messages/busy-b/stream")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        assert orjson_code(await refused.aread()) == "gateway_busy"
        assert (await open_stream(stack, client, "/v1/messages/busy-a/stream")).status_code == 200  # shared


async def test_a_stream_of_an_unknown_message_is_404_after_the_configured_wait(
    redis_server: RedisServer,
) -> None:
    wait_s = 0.5
    settings = load_settings(redis_url=redis_server.url, gateway_wait_for_start_s=wait_s)
    async with serve_in_process(settings) as client:
        started = time.monotonic()
        response = await client.get("/v1/messages/never-produced/stream")
        waited_s = time.monotonic() - started
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
        assert wait_s <= waited_s < wait_s + 2, waited_s
        snapshot = await client.get("/v1/messages/never-produced/stream?snapshot=1")
        assert snapshot.status_code == 404  # no more "waiting" snapshot of a message nobody produces


def orjson_code(body: bytes) -> str:
    code: str = orjson.loads(body)["error"]["code"]
    return code


async def _readers_are(client: httpx.AsyncClient, count: int) -> bool:
    return await metric(client, "lcstream_gateway_readers") == count
