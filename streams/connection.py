"""Opening a Redis client the way lcstream needs it: bytes replies, hiredis, bounded timeouts."""

from __future__ import annotations

from redis.asyncio import Redis


def connect(url: str, *, socket_timeout_s: float = 10.0, max_connections: int = 64) -> Redis:
    """A client for `url`; replies stay bytes (the codec decodes), blocking reads stay below the timeout."""
    client: Redis = Redis.from_url(
        url,
        decode_responses=False,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=min(socket_timeout_s, 5.0),
        max_connections=max_connections,
        health_check_interval=30,
    )
    return client
