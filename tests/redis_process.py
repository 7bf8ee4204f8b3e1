"""redis-server processes that tests and benchmarks own: start on a free loopback port, wait for PING, stop.

No pytest here: the fixtures in `tests/conftest.py` wrap it (turning a failed start
into a test failure), and `tests/benchmarks` uses it directly.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis


class RedisStartError(RuntimeError):
    """redis-server is missing, or did not answer PING in time."""


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


def start_redis_server(
    directory: Path, *extra: str, port: int | None = None, start_timeout_s: float = 10.0
) -> RedisServer:
    """Start redis-server on a free loopback port (or `port`, for a restart) in `directory`; wait for PING.

    Raises:
        RedisStartError: no redis-server on the PATH, or it did not answer within `start_timeout_s`.
    """
    binary = shutil.which("redis-server")
    if binary is None:  # CI and `make test` install it; a missing one is a failure, not a skip
        raise RedisStartError("redis-server not found: run 'make test' or 'apt-get install -y redis-server'")
    port = free_port() if port is None else port
    assert port != 6379, "never touch the machine's own Redis"
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(directory), "--logfile", str(directory / "redis.log"), *extra]
    process = subprocess.Popen(args)
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + start_timeout_s
    try:
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:  # BusyLoadingError too, while it loads its AOF
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    process.wait()
                    log = (directory / "redis.log").read_text() if (directory / "redis.log").exists() else ""
                    raise RedisStartError(
                        f"redis-server on port {port} did not start: {log[-2000:]}"
                    ) from None
                time.sleep(0.02)
    finally:
        client.close()
    return RedisServer(port, process)


def stop_redis_server(server: RedisServer) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
