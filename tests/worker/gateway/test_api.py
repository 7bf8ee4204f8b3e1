"""The gateway's JSON endpoints, health, metrics and static page, under uvicorn in-process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from lcstream.config import Settings, load_settings
from lcstream.streams.keys import Keyspace
from lcstream.streams.producer import StreamProducer
from lcstream.streams.publish import publish_events
from lcstream.worker.engine.runner import Worker
from tests.conftest import RedisServer, free_port, start_redis_server, stop_redis_server
from tests.helpers import wait_for
from tests.integration.test_acl import create_users, denials
from tests.worker.gateway.support import metric, serve_in_process, text_events


def settings_for(redis_url: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {"consumer": "api-test", "block_ms": 50, "socket_timeout_s": 5}
    return load_settings(redis_url=redis_url, **{**base, **overrides})


async def test_message_is_404_then_202_waiting_then_202_streaming_then_200_with_the_outcome(
    real_redis: Redis, redis_server: RedisServer
) -> None:
    settings = settings_for(redis_server.url)
    message_id = "api-status"
    events = text_events(message_id, [f"word{i} " for i in range(30)])
    async with serve_in_process(settings) as client:
        assert (await client.get("/v1/messages/nothing-here")).status_code == 404
        invalid = await client.get("/v1/messages/bad%20id")
        assert invalid.status_code == 400 and invalid.json()["error"]["code"] == "invalid_message_id"

        producer = StreamProducer(real_redis, message_id)
        for event in events[:10]:
            await producer.send(event)
        await producer.flush()
        waiting = await client.get(f"/v1/messages/{message_id}")
        assert (waiting.status_code, waiting.json()) == (202, {"status": "waiting", "seq": 0})

        worker = Worker(real_redis, settings)
        running = asyncio.create_task(worker.run())
        out = Keyspace().message(message_id).out

        async def streaming() -> bool:
            response = await client.get(f"/v1/messages/{message_id}")
            return response.status_code == 202 and response.json()["status"] == "streaming"

        await wait_for(streaming, what="202 streaming")
        seq = (await client.get(f"/v1/messages/{message_id}")).json()["seq"]
        assert 1 <= seq <= await real_redis.xlen(out)

        for event in events[10:]:
            await producer.send(event)
        await producer.aclose()
        await wait_for(lambda: _status_is(client, f"/v1/messages/{message_id}", 200), what="the outcome")
        worker.stop()
        await asyncio.wait_for(running, 30)
        done = await client.get(f"/v1/messages/{message_id}")
        stored = await real_redis.get(Keyspace().message(message_id).result)
        assert stored is not None and done.json() == orjson.loads(stored)
        assert done.json()["status"] == "completed"
        assert done.json()["message"]["data"]["usage_metadata"]["output_tokens"] == 30
        assert (
            await metric(
                client, "lcstream_gateway_requests_total", 'route="/v1/messages/{message_id}",status="404"'
            )
            == 1
        )


async def test_messages_lists_messages_newest_first_from_their_notices(
    real_redis: Redis, redis_server: RedisServer
) -> None:
    settings = settings_for(redis_server.url)
    async with serve_in_process(settings) as client:
        empty = (await client.get("/v1/messages")).json()
        assert empty["messages"] == []  # the list starts empty: pub/sub has no history
        notices = Keyspace().notices

        async def listening() -> bool:
            ((_, subscribers),) = await real_redis.pubsub_numsub(notices)
            return int(subscribers) == 1

        await wait_for(listening, what="the gateway's notices subscription")
        await publish_events(real_redis, text_events("api-first", ["hello ", "world"]))
        await Worker(real_redis, settings).run(until_idle=True)
        failing = [
            *text_events("api-second", ["oops"])[:-1],
            {"event": "error", "message": "boom", "code": "x"},
        ]
        await publish_events(real_redis, failing)
        await Worker(real_redis, settings).run(until_idle=True)

        async def both_listed() -> bool:
            listed = (await client.get("/v1/messages")).json()["messages"]
            return [(m["message_id"], m["status"]) for m in listed] == [
                ("api-second", "failed"), ("api-first", "completed")
            ]  # fmt: skip

        await wait_for(both_listed, what="both messages with their final status")
        body = (await client.get("/v1/messages")).json()
        assert body["listening_since"] and all(m["updated_at"].endswith("Z") for m in body["messages"])


async def test_healthz_metrics_and_the_dashboard_page(redis_server: RedisServer) -> None:
    async with serve_in_process(settings_for(redis_server.url)) as client:
        health = await client.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        page = await client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script src="/static/dashboard.js"' in page.text
        for asset in ("/static/dashboard.js", "/static/dashboard.css"):
            assert (await client.get(asset)).status_code == 200
        assert await metric(client, "lcstream_gateway_requests_total", 'route="/healthz",status="200"') == 1
        assert await metric(client, "lcstream_gateway_requests_total", 'route="/",status="200"') == 1
        assert await metric(client, "lcstream_gateway_sse_clients") == 0


async def test_healthz_is_503_and_redis_backed_endpoints_503_when_redis_is_down() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with serve_in_process(settings_for(dead, socket_timeout_s=1)) as client:
        health = await client.get("/healthz")
        assert health.status_code == 503 and health.json()["error"]["code"] == "redis_unavailable"
        for path in ("/v1/messages/some-id", "/v1/messages/some-id/stream"):
            response = await client.get(path)
            assert response.status_code == 503, path
            assert response.json()["error"]["code"] == "redis_unavailable"
            assert response.headers["retry-after"] == "1"
        assert (await client.get("/v1/messages")).status_code == 200  # served from memory


async def _status_is(client: Any, path: str, status: int) -> bool:
    return int((await client.get(path)).status_code) == status


async def test_the_gateway_needs_no_more_than_the_reader_acl_user(tmp_path: Path) -> None:
    server = start_redis_server(tmp_path)
    admin = Redis.from_url(server.url)
    try:
        passwords = create_users(server, "lcstream")
        reader_url = f"redis://lcstream-reader:{passwords['lcstream-reader']}@127.0.0.1:{server.port}/0"
        settings = settings_for(reader_url)
        async with serve_in_process(settings) as client:
            await wait_for(lambda: _listening(admin), what="the notices subscription")
            await publish_events(admin, text_events("acl-done", ["all ", "good"]))
            await Worker(admin, settings_for(server.url)).run(until_idle=True)
            producer = StreamProducer(admin, "acl-waiting")
            await producer.send(text_events("acl-waiting", ["x"])[0])
            await producer.aclose()

            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/v1/messages/acl-done")).json()["status"] == "completed"
            assert (await client.get("/v1/messages/acl-waiting")).status_code == 202
            assert (await client.get("/v1/messages/acl-none")).status_code == 404
            stream = await client.get("/v1/messages/acl-done/stream?snapshot=1")
            assert stream.status_code == 200 and "event: snapshot" in stream.text
            assert '"kind":"output"' not in stream.text  # the snapshot covered the whole message
            resumed = await client.get("/v1/messages/acl-done/stream", headers={"Last-Event-ID": "1"})
            assert resumed.text.count("event: frame") == 3  # after the start: text, text, output
            await wait_for(lambda: _listed(client, "acl-done"), what="the notice")
            operations = (await client.get("/v1/operations")).json()
            assert operations["problem"] is None and operations["samples"]  # the sampler reads as reader
            assert (await client.get("/v1/operations/dead/acl-done")).status_code == 200
            assert await denials(admin) == []
            await admin.xadd(Keyspace().dead, {"m": "acl-waiting", "reason": "idle_timeout"})
            for action, response in (
                ("delete", await client.delete("/v1/operations/dead/acl-waiting")),
                ("retry", await client.post("/v1/operations/dead/acl-waiting/retry")),
            ):  # a reader writes nothing
                assert (response.status_code, response.json()["error"]["code"]) == (403, "redis_refused")
                assert f"lcstream dead {action}" in response.json()["error"]["message"]
            assert await admin.xlen(Keyspace().dead) == 1
    finally:
        await admin.aclose()
        stop_redis_server(server)


async def _listening(redis: Redis) -> bool:
    ((_, subscribers),) = await redis.pubsub_numsub(Keyspace().notices)
    return int(subscribers) == 1


async def _listed(client: Any, message_id: str) -> bool:
    listed = (await client.get("/v1/messages")).json()["messages"]
    return any(m["message_id"] == message_id for m in listed)
