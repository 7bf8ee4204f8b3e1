"""Opening a Redis client the way lcstream needs it: bytes replies, hiredis, bounded timeouts, TLS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from config import Settings


def connect(
    url: str,
    *,
    socket_timeout_s: float = 10.0,
    max_connections: int = 64,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> Redis:
    """A client for `url`; replies stay bytes (the codec decodes), blocking reads stay below the timeout.

    For `rediss://` the server certificate and host name are verified against
    `ca_file` (else the system store); `cert_file`/`key_file` present a client
    certificate.
    """
    tls: dict[str, Any] = {}
    if url.startswith("rediss://"):
        # redis-py leaves host name checking off by default: without it any certificate the CA
        # (or, with the system store, any public CA) signed for any host would be accepted.
        tls = {
            "ssl_cert_reqs": "required",
            "ssl_check_hostname": True,
            "ssl_ca_certs": str(ca_file) if ca_file else None,
        }
        if cert_file is not None:
            tls |= {"ssl_certfile": str(cert_file), "ssl_keyfile": str(key_file) if key_file else None}
    client: Redis = Redis.from_url(
        url,
        decode_responses=False,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=min(socket_timeout_s, 5.0),
        max_connections=max_connections,
        health_check_interval=30,
        **tls,
    )
    return client


def connect_with(settings: Settings) -> Redis:
    """A client for the configured Redis."""
    return connect(
        settings.redis_url,
        socket_timeout_s=settings.socket_timeout_s,
        ca_file=settings.tls_ca_file,
        cert_file=settings.tls_cert_file,
        key_file=settings.tls_key_file,
    )
