"""Fixtures of the fault tests: each test owns its redis-server and its worker processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.conftest import RedisServer, WorkerProcess, start_redis_server, stop_redis_server
from tests.faults.support import SpawnWorker, worker_base_env


@pytest.fixture
def fault_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone, on a free loopback port."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = start_redis_server(directory)
    yield server
    stop_redis_server(server)


@pytest.fixture
async def fault_redis(fault_server: RedisServer) -> AsyncIterator[Redis]:
    """A client of the test's own redis-server."""
    client = Redis.from_url(fault_server.url)
    yield client
    await client.aclose()


@pytest.fixture
def spawn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SpawnWorker]:
    """`spawn(consumer, url=None, **env)` starts an `lcstream worker` named `consumer`, logging to a file.

    Without `url` it serves the test's own `fault_server`. Whatever is still running
    (or stopped with SIGSTOP) at the end is killed.
    """
    started: list[WorkerProcess] = []

    def spawn_worker(consumer: str, url: str | None = None, **env: str) -> WorkerProcess:
        if url is None:
            url = request.getfixturevalue("fault_server").url
        full_env = {**worker_base_env(url), "LCSTREAM_CONSUMER": consumer, **env}
        worker = WorkerProcess(full_env, tmp_path / f"{consumer}.log")
        started.append(worker)
        return worker

    yield spawn_worker
    for worker in started:
        worker.kill()
