"""Opening a Redis client the way lcstream needs it: bytes replies, hiredis, bounded timeouts, TLS."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis

from lcstream.config import Settings, load_settings, redact_url
from lcstream.streams.cluster import NodeRoutedCluster, RedisClient

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def connect(
    url: str | None = None,
    *,
    socket_timeout_s: float = 10.0,
    max_connections: int = 64,
    wait_for_connection_s: float | None = None,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> RedisClient:
    """A client for `url`; replies stay bytes (the codec decodes), blocking reads stay below the timeout.

    With `wait_for_connection_s`, a command that finds all `max_connections` of a
    single Redis in use waits that long for one instead of failing at once.

    Without `url`, the Redis the environment configures, as workers read it
    (`LCSTREAM_REDIS_URL`, its socket timeout and TLS files). `redis+cluster://host:port`
    (or `rediss+cluster://`) names any node of a Redis Cluster. For `rediss://`
    the server certificate and host name are verified against `ca_file` (else
    the system store); `cert_file`/`key_file` present a client certificate.
    """
    if url is None:
        return connect_with(load_settings())
    scheme, sep, rest = url.partition("://")
    options = _options(
        CLUSTER_SCHEMES.get(scheme, scheme), socket_timeout_s, max_connections, ca_file, cert_file, key_file
    )
    if scheme not in CLUSTER_SCHEMES:
        if wait_for_connection_s is None:
            client: Redis = Redis.from_url(url, **options)
            return client
        pool = BlockingConnectionPool.from_url(url, timeout=wait_for_connection_s, **options)
        return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it
    parts = urlsplit(f"{CLUSTER_SCHEMES[scheme]}{sep}{rest}")
    node_options = {
        **options,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "ssl": parts.scheme == "rediss",
    }
    # redis-py's stubs inherit an abstract `connection_pool` the cluster client never has.
    return NodeRoutedCluster(  # type: ignore[abstract]
        host=parts.hostname, port=parts.port or 6379, node_options=node_options, **node_options
    )


def connect_single(url: str, **options: Any) -> Redis:
    """`connect()` for what needs a single Redis (arq's jobs, the embedded demo, tests).

    Raises:
        ValueError: `url` names a Redis Cluster.
    """
    if url.partition("://")[0] in CLUSTER_SCHEMES:
        raise ValueError(f"{redact_url(url)} names a Redis Cluster; this needs a single Redis")
    client = connect(url, **options)
    assert isinstance(client, Redis)
    return client


def _options(
    scheme: str,
    socket_timeout_s: float,
    max_connections: int,
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
) -> dict[str, Any]:
    tls: dict[str, Any] = {}
    if scheme == "rediss":
        # redis-py leaves host name checking off by default: without it any certificate the CA
        # (or, with the system store, any public CA) signed for any host would be accepted.
        tls = {
            "ssl_cert_reqs": "required",
            "ssl_check_hostname": True,
            "ssl_ca_certs": str(ca_file) if ca_file else None,
        }
        if cert_file is not None:
            tls |= {"ssl_certfile": str(cert_file), "ssl_keyfile": str(key_file) if key_file else None}
    return {
        "decode_responses": False,
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": min(socket_timeout_s, 5.0),
        "max_connections": max_connections,
        "health_check_interval": 30,
        **tls,
    }


def connect_with(settings: Settings) -> RedisClient:
    """A client for the configured Redis (or Redis Cluster)."""
    return connect(settings.redis_url, **_settings_options(settings))


def connect_single_with(settings: Settings) -> Redis:
    """A client for the configured Redis, which must not be a cluster (see `connect_single`)."""
    return connect_single(settings.redis_url, **_settings_options(settings))


def _settings_options(settings: Settings) -> dict[str, Any]:
    return {
        "socket_timeout_s": settings.socket_timeout_s,
        "ca_file": settings.tls_ca_file,
        "cert_file": settings.tls_cert_file,
        "key_file": settings.tls_key_file,
    }
