"""`lcstream worker` starting before its Redis (it waits, a line per attempt), or with a wrong password
(one line, exit 3)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_outcome
from tests.conftest import conformance_cases, free_port, start_redis_server, stop_redis_server
from tests.helpers import wait_for
from tests.integration.processes import Workers, lcstream_env

PLAIN = next(c for c in conformance_cases() if c["name"] == "plain_text")


async def test_a_worker_started_before_its_redis_waits_for_it_then_serves(tmp_path: Path) -> None:
    port = free_port()
    with Workers(tmp_path) as workers:
        worker = workers.start(lcstream_env(f"redis://127.0.0.1:{port}/0"))

        async def retried_twice() -> bool:
            attempts = [line for line in worker.log_lines() if line["event"] == "redis-unavailable"]
            return len(attempts) > 1

        await wait_for(retried_twice, timeout_s=15, what="two logged attempts to reach Redis")
        assert worker.process.poll() is None
        server = start_redis_server(tmp_path, port=port)
        client = Redis(port=port)
        try:
            await publish_events(client, PLAIN["events"], message_id="after-start")

            async def served() -> bool:
                return await read_outcome(client, "after-start") is not None

            await wait_for(served, timeout_s=20, what="the worker to serve once Redis is up")
            assert worker.terminate() == 0
        finally:
            await client.aclose()
            stop_redis_server(server)
    text = worker.log_path.read_text()
    assert "Traceback" not in text
    attempts = [line for line in worker.log_lines() if line["event"] == "redis-unavailable"]
    assert all("retry_in_s" in line and "Connection" in line["error"] for line in attempts)


async def test_a_wrong_password_ends_the_worker_with_one_line(tmp_path: Path) -> None:
    server = start_redis_server(tmp_path)
    admin = Redis(port=server.port)
    await admin.config_set("requirepass", "right-password")
    await admin.aclose()
    try:
        with Workers(tmp_path) as workers:
            worker = workers.start(lcstream_env(f"redis://:wrong-password@127.0.0.1:{server.port}/0"))
            code = await asyncio.to_thread(worker.wait, 15)
    finally:
        stop_redis_server(server)
    lines = [line for line in worker.log_path.read_text().splitlines() if line.strip()]
    assert code == 3
    assert len(lines) == 1, lines
    assert lines[0].startswith("lcstream worker: Redis refused") and "wrong-password" not in lines[0]
