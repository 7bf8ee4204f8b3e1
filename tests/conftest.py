"""Shared fixtures: a fresh fakeredis per test, and a real redis-server the suite starts itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from redis.asyncio import Redis

from tests import cluster_process, redis_process
from tests.cluster_process import LocalCluster

# Re-exported: the fixtures' users import these names from here.
from tests.redis_process import RedisServer as RedisServer
from tests.redis_process import free_port as free_port
from tests.redis_process import stop_redis_server as stop_redis_server

CONFORMANCE_DIR = Path(__file__).resolve().parent / "fixtures" / "conformance"


def conformance_cases() -> list[dict[str, Any]]:
    """Every conformance fixture, parsed (`make fixtures` writes them from langchain-core's own stream)."""
    files = sorted(CONFORMANCE_DIR.glob("*.json"))
    assert files, f"no conformance fixtures in {CONFORMANCE_DIR}: run 'make fixtures'"
    return [json.loads(f.read_text()) for f in files]


def start_redis_server(directory: Path, *extra: str, port: int | None = None) -> RedisServer:
    """Start redis-server on a free loopback port (or `port`, for a restart) in `directory`; wait for PING.

    A server that can't start fails the test (CI must run the real backend; it never skips).
    """
    try:
        return redis_process.start_redis_server(directory, *extra, port=port)
    except redis_process.RedisStartError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session, never the machine's own on 6379."""
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    yield server
    stop_redis_server(server)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One local 3-master Redis Cluster for the session (no replicas), on free loopback ports."""
    try:
        cluster = cluster_process.start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    except redis_process.RedisStartError as exc:  # a cluster that can't start fails, never skips
        pytest.fail(str(exc))
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: LocalCluster) -> str:
    """The session cluster's `redis+cluster://` URL, every master flushed first."""
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture
async def real_redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A client of the session's redis-server, flushed before each test."""
    client = Redis.from_url(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def fake_redis() -> AsyncIterator[Redis]:
    """An in-process fakeredis with a fresh server per test."""
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(version=(7, 2)))
    yield client
    await client.aclose()


@pytest.fixture(params=["fake", "real"])
async def any_redis(request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    """The same test body against fakeredis and the real redis-server."""
    if request.param == "fake":
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(version=(7, 2)))
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        client = Redis.from_url(server.url)
        await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def worker_env(redis_server: RedisServer) -> dict[str, str]:
    """Environment for `lcstream` subprocesses on the session's redis-server, flushed first."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LCSTREAM_")}
    env.update(
        LCSTREAM_REDIS_URL=redis_server.url,
        LCSTREAM_BLOCK_MS="100",
        LCSTREAM_LOG_FORMAT="json",
    )
    return env


class WorkerProcess:
    """An `lcstream worker` subprocess; its stderr (JSON log lines) goes to a file."""

    def __init__(self, env: dict[str, str], log_path: Path, *args: str) -> None:
        binary = Path(sys.executable).with_name("lcstream")
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen([str(binary), "worker", *args], env=env, stderr=self._log)

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far."""
        lines = []
        for raw in self.log_path.read_text().splitlines():
            if raw.startswith("{"):
                lines.append(json.loads(raw))
        return lines

    def wait(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            self._log.close()

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait(10)


@pytest.fixture
def spawn_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `lcstream worker` subprocesses; any left running are killed at the end."""
    started: list[WorkerProcess] = []

    def spawn(*args: str, **env: str) -> WorkerProcess:
        worker = WorkerProcess({**worker_env, **env}, tmp_path / f"worker-{len(started)}.log", *args)
        started.append(worker)
        return worker

    yield spawn
    for worker in started:
        worker.kill()
