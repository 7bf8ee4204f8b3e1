"""docs/jobs.md's example runs: the endpoint (app.py) enqueues, a client (client.py) follows the message."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from lcstream.streams.reader import read_outcome
from tests.conftest import RedisServer
from tests.docs_support import python_block
from tests.worker.jobs.models import FAST
from tests.worker.jobs.support import job_settings, run_job_burst, run_stream_burst


def load(block_name: str, module_name: str) -> dict[str, Any]:
    """Run the docs' block `block_name` as module `module_name` (not `__main__`); its namespace."""
    block = python_block(block_name)
    namespace: dict[str, Any] = {"__name__": module_name}
    exec(compile(block.code, block.where, "exec"), namespace)  # noqa: S102 - our own docs
    return namespace


async def test_the_endpoint_enqueues_and_the_client_follows_the_message(
    real_redis: Redis,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LCSTREAM_REDIS_URL", redis_server.url)
    monkeypatch.setenv("LCSTREAM_MODEL", FAST[1])  # text, then a tool call
    app = load("app.py", "app")["app"]
    follow = load("client.py", "client")["follow"]

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            response = await client.post("/generate", json={"prompt": "look it up"})
            assert response.status_code == 202
            message_id = response.json()["message_id"]
            queued = await client.delete(f"/generate/{message_id}x")  # an id nobody enqueued
            assert queued.json() == {"cancelled": False, "status": "absent"}

            settings = job_settings(redis_server.url, model=FAST[1])
            await run_job_burst(real_redis, settings)
            await run_stream_burst(real_redis, settings)
            ended = await client.delete(f"/generate/{message_id}")
            assert ended.json() == {"cancelled": False, "status": "completed"}

    capsys.readouterr()  # drop the workers' log lines
    await follow(redis_server.url, message_id)
    printed = capsys.readouterr().out
    outcome = await read_outcome(real_redis, message_id)
    assert outcome is not None and outcome.message is not None
    text = "".join(b["text"] for b in outcome.message["data"]["content"] if b["type"] == "text")
    assert printed.startswith(text) and text == "Let me look that up."
    assert "'name': 'search'" in printed and "'total_tokens': 20" in printed
