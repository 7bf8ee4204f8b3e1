"""Fixtures of the gateway tests: `lcstream serve` subprocesses on the session's redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.worker.gateway.support import GatewayProcess

SpawnGateway = Callable[..., Awaitable[GatewayProcess]]


@pytest.fixture
async def spawn_gateway(worker_env: dict[str, str], tmp_path: Path) -> AsyncIterator[SpawnGateway]:
    """Start `lcstream serve` processes (ready when they return); all are stopped at the end."""
    started: list[GatewayProcess] = []

    async def spawn(**env: str) -> GatewayProcess:
        gateway = GatewayProcess({**worker_env, **env}, tmp_path / f"gateway-{len(started)}.log")
        started.append(gateway)
        await gateway.wait_ready()
        return gateway

    yield spawn
    for gateway in started:
        gateway.stop()
