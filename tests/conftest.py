"""Shared fixtures: a fresh fakeredis per test, and a real redis-server the suite starts itself."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from redis.asyncio import Redis

CONFORMANCE_DIR = Path(
    os.environ.get("LCSTREAM_CONFORMANCE_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "conformance"
)


def conformance_cases() -> list[dict[str, Any]]:
    """Every conformance fixture, parsed; fails loudly when the folder is missing."""
    files = sorted(CONFORMANCE_DIR.glob("*.json"))
    assert files, (
        f"no conformance fixtures in {CONFORMANCE_DIR}: clone next to shared/ or set LCSTREAM_CONFORMANCE_DIR"
    )
    return [json.loads(f.read_text()) for f in files]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class RedisServer:
    """A redis-server process the tests own."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def start_redis_server(directory: Path, *extra: str, port: int | None = None) -> RedisServer:
    """Start redis-server on a free loopback port (or `port`, for a restart) in `directory`; wait for PING."""
    binary = shutil.which("redis-server")
    if binary is None:  # CI and `make test` install it; a missing one is a failure, not a skip
        pytest.fail("redis-server not found: run 'make test' or 'apt-get install -y redis-server'")
    port = free_port() if port is None else port
    assert port != 6379, "never touch the machine's own Redis"
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(directory), "--logfile", str(directory / "redis.log"), *extra]
    process = subprocess.Popen(args)
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:  # BusyLoadingError too, while it loads its AOF
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    log = (directory / "redis.log").read_text() if (directory / "redis.log").exists() else ""
                    pytest.fail(f"redis-server on port {port} did not start: {log[-2000:]}")
                time.sleep(0.02)
    finally:
        client.close()
    return RedisServer(port, process)


def stop_redis_server(server: RedisServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session, never the machine's own on 6379."""
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    yield server
    stop_redis_server(server)


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
