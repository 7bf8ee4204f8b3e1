"""Acceptance: `lcstream health` fails for a worker that has lost Redis and passes after reconnect."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import RedisServer, free_port, start_redis_server, stop_redis_server
from tests.faults.support import SpawnWorker, start_redis_at, wait_for_log, worker_base_env
from tests.helpers import wait_for
from tests.integration.processes import run_lcstream


async def health_exit_code(env: dict[str, str], *args: str) -> int:
    result = await asyncio.to_thread(run_lcstream, "health", *args, env=env, timeout_s=30)
    return result.returncode


async def test_health_fails_while_redis_is_gone_and_passes_again_after_reconnect(
    tmp_path: Path, spawn: SpawnWorker
) -> None:
    directory = tmp_path / "redis"
    directory.mkdir()
    servers: list[RedisServer] = [start_redis_server(directory)]
    url, port = servers[0].url, free_port()
    env = {**worker_base_env(url), "LCSTREAM_METRICS_PORT": str(port)}
    try:
        worker = spawn("health-w", url=url, LCSTREAM_METRICS_PORT=str(port))
        await wait_for_log(worker, "started")

        async def exits(code: int, *args: str) -> bool:
            return await health_exit_code(env, *args) == code

        await wait_for(lambda: exits(0), timeout_s=15, what="health to pass")
        stop_redis_server(servers[0])
        await wait_for(lambda: exits(1), timeout_s=15, what="health to fail without Redis")
        said = await asyncio.to_thread(run_lcstream, "health", env=env)
        assert "Redis unavailable" in said.stderr
        assert await health_exit_code(env, "--live") == 0  # alive: it retries, a restart would not help

        servers.append(start_redis_at(directory, servers[0].port))
        await wait_for(lambda: exits(0), timeout_s=20, what="health to pass after reconnect")
        assert worker.terminate() == 0
    finally:
        for server in servers:
            stop_redis_server(server)


async def test_health_without_a_worker_fails_and_without_a_port_says_why() -> None:
    env = worker_base_env("redis://127.0.0.1:1/0")
    assert await health_exit_code({**env, "LCSTREAM_METRICS_PORT": str(free_port())}) == 1
    result = await asyncio.to_thread(run_lcstream, "health", env=env)
    assert result.returncode == 2
    assert "LCSTREAM_METRICS_PORT" in result.stderr
