"""Starting several workers at the same instant on a preloaded Redis.

Workers take a second or so to import; the first one up would otherwise drain a
small backlog alone. `CLIENT PAUSE WRITE` holds every client at its first write
command (creating the consumer group, or `XREADGROUP`, which writes the pending
list); once each worker has a connection held there, `CLIENT UNPAUSE` lets them
all go together.
"""

from __future__ import annotations

from types import TracebackType

from redis.asyncio import Redis

from tests.benchmarks.waiting import poll_until

PAUSE_MS = 300_000  # Redis lifts the pause by itself after this, whatever happens here


class StartGate:
    """`async with StartGate(redis) as gate:` start the workers, then `await gate.open(workers)`."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._open = False

    async def __aenter__(self) -> StartGate:
        await self._redis.client_pause(PAUSE_MS, all=False)
        return self

    async def open(self, workers: int, *, timeout_s: float = 120.0) -> None:
        """Wait until `workers` clients are held at a write, then let everyone go."""

        async def all_held() -> bool:
            clients = await self._redis.client_list()
            return sum("b" in client["flags"] for client in clients) >= workers

        await poll_until(
            all_held, timeout_s=timeout_s, interval_s=0.01, what=f"{workers} workers at the gate"
        )
        await self._redis.client_unpause()
        self._open = True

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._open:
            await self._redis.client_unpause()
