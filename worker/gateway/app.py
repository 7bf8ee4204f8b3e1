"""`create_app(settings)`: the gateway's Starlette app, whose lifespan owns Redis and the readers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lcstream.config import Settings
from lcstream.streams.connection import connect
from lcstream.streams.keys import Keyspace
from lcstream.worker.gateway import api
from lcstream.worker.gateway.hub import HubRegistry
from lcstream.worker.gateway.metrics import GatewayMetrics, RequestCounter
from lcstream.worker.gateway.notices import NoticeBoard
from lcstream.worker.gateway.sse import CutOffFilter, stream_message
from lcstream.worker.gateway.state import Gateway

log = structlog.get_logger("lcstream.gateway")

# Each message being streamed holds one pub/sub connection while it has clients (see `hub`).
MAX_REDIS_CONNECTIONS = 1024


def _install_cut_off_filter() -> None:
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, CutOffFilter) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(CutOffFilter())


def _log_failure(task: asyncio.Task[None]) -> None:
    # The notices listener retries Redis faults by itself; ending any other way is a bug, said at once.
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("notices-failed", error=repr(exc))


def create_app(settings: Settings) -> Starlette:
    """The gateway: SSE per message, outcomes, recent messages, health, metrics and the dashboard."""
    metrics = GatewayMetrics()
    _install_cut_off_filter()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        redis = connect(
            settings.redis_url,
            socket_timeout_s=settings.socket_timeout_s,
            max_connections=MAX_REDIS_CONNECTIONS,
            ca_file=settings.tls_ca_file,
            cert_file=settings.tls_cert_file,
            key_file=settings.tls_key_file,
        )
        keyspace = Keyspace.from_settings(settings)
        gateway = Gateway(
            settings=settings,
            redis=redis,
            keyspace=keyspace,
            hubs=HubRegistry(redis, keyspace, metrics),
            notices=NoticeBoard(redis, keyspace.notices, settings.gateway_recent_messages),
            metrics=metrics,
        )
        notices = asyncio.create_task(gateway.notices.run(), name="gateway-notices")
        notices.add_done_callback(_log_failure)
        try:
            yield {"gateway": gateway}
        finally:
            notices.cancel()
            await asyncio.gather(notices, return_exceptions=True)
            await gateway.hubs.aclose()
            await redis.aclose()

    routes = [
        Route("/", api.dashboard),
        Route("/healthz", api.healthz),
        Route("/metrics", api.metrics),
        Route("/v1/messages", api.list_messages),
        Route("/v1/messages/{message_id}", api.get_message),
        Route("/v1/messages/{message_id}/stream", stream_message),
        Mount("/static", StaticFiles(directory=api.STATIC_DIR), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(RequestCounter, metrics=metrics)],
        exception_handlers={RedisError: api.redis_unavailable},
        lifespan=lifespan,
    )
