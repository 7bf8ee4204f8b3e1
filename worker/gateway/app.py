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
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lcstream.config import Settings
from lcstream.streams.connection import connect
from lcstream.streams.keys import Keyspace
from lcstream.worker.gateway import api, errors, operations_api, runs_api
from lcstream.worker.gateway.access_log import AccessLog
from lcstream.worker.gateway.auth import Authority, auth_required
from lcstream.worker.gateway.hub import HubRegistry
from lcstream.worker.gateway.limits import ClientStreams
from lcstream.worker.gateway.live_mux import LiveMux
from lcstream.worker.gateway.metrics import GatewayMetrics
from lcstream.worker.gateway.notices import NoticeBoard
from lcstream.worker.gateway.run_hub import RunHubRegistry
from lcstream.worker.gateway.sampler import OperationsSampler
from lcstream.worker.gateway.sse import CutOffFilter, stream_message
from lcstream.worker.gateway.state import Gateway

log = structlog.get_logger("lcstream.gateway")

# Redis connections of the gateway, whatever it serves: at most this many to a single Redis (per node on a
# cluster). One carries every live channel (`live_mux`), one the notices; reads of O(M) and R(M) share the
# rest, a request waiting at most WAIT_FOR_CONNECTION_S for one.
MAX_REDIS_CONNECTIONS = 8
WAIT_FOR_CONNECTION_S = 10.0


def _install_cut_off_filter() -> None:
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, CutOffFilter) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(CutOffFilter())


def _log_failure(task: asyncio.Task[None]) -> None:
    # The notices listener and the sampler retry Redis faults by themselves; ending any other way is a
    # bug, said at once.
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("background-task-failed", task=task.get_name(), error=repr(exc))


def create_app(settings: Settings) -> Starlette:
    """The gateway: SSE per message and per run, outcomes, recent messages and runs, sessions, health,
    metrics, the dashboard.

    Who may read what follows the settings (`auth.auth_required`); `lcstream serve` refuses to listen
    beyond loopback without a credential (`auth.exposure_problem`).
    """
    metrics = GatewayMetrics()
    authority = Authority(settings, required=auth_required(settings))
    _install_cut_off_filter()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        redis = connect(
            settings.redis_url,
            socket_timeout_s=settings.socket_timeout_s,
            max_connections=MAX_REDIS_CONNECTIONS,
            wait_for_connection_s=WAIT_FOR_CONNECTION_S,
            ca_file=settings.tls_ca_file,
            cert_file=settings.tls_cert_file,
            key_file=settings.tls_key_file,
        )
        keyspace = Keyspace.from_settings(settings)
        live = LiveMux(redis)
        gateway = Gateway(
            settings=settings,
            redis=redis,
            keyspace=keyspace,
            hubs=HubRegistry(redis, keyspace, metrics, live=live, capacity=settings.gateway_max_readers),
            runs=RunHubRegistry(redis, keyspace, live=live, capacity=settings.gateway_max_readers),
            live=live,
            notices=NoticeBoard(redis, keyspace, settings.gateway_recent_messages),
            metrics=metrics,
            authority=authority,
            client_streams=ClientStreams(settings.gateway_max_client_streams),
            operations=OperationsSampler(
                redis, keyspace, settings.group,
                interval_s=settings.gateway_sample_interval_s, window_s=settings.gateway_operations_window_s,
            ),
        )  # fmt: skip
        background = [
            asyncio.create_task(gateway.notices.run(), name="gateway-notices"),
            asyncio.create_task(gateway.operations.run(), name="gateway-operations"),
        ]
        for task in background:
            task.add_done_callback(_log_failure)
        try:
            yield {"gateway": gateway}
        finally:
            gateway.operations.stop()  # its loop ends even should a library swallow the cancellation
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await gateway.hubs.aclose()
            await gateway.runs.aclose()
            await live.aclose()
            await redis.aclose()

    routes = [
        Route("/", api.dashboard),
        Route("/healthz", api.healthz),
        Route("/metrics", api.metrics),
        Route("/v1/session", api.open_session, methods=["POST"]),
        Route("/v1/session", api.close_session, methods=["DELETE"]),
        Route("/v1/messages", api.list_messages),
        Route("/v1/messages/{message_id}", api.get_message),
        Route("/v1/messages/{message_id}/stream", stream_message),
        Route("/v1/runs", runs_api.list_runs),
        Route("/v1/runs/{run_id}", runs_api.get_run),
        Route("/v1/runs/{run_id}/stream", runs_api.stream_run),
        Route("/operations", operations_api.page),
        Route("/v1/operations", operations_api.figures),
        Route("/v1/operations/dead/{message_id}", operations_api.dead_letter),
        Route("/v1/operations/dead/{message_id}", operations_api.delete, methods=["DELETE"]),
        Route("/v1/operations/dead/{message_id}/retry", operations_api.retry, methods=["POST"]),
        Mount("/static", StaticFiles(directory=api.STATIC_DIR), name="static"),
    ]
    middleware = [Middleware(AccessLog, metrics=metrics)]
    if settings.gateway_cors_origins:
        middleware.append(
            Middleware(
                errors.JsonCorsMiddleware,
                allow_origins=settings.gateway_cors_origins,
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Authorization", "Last-Event-ID", "Content-Type"],
                allow_credentials=True,
                max_age=600,
            )
        )
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={RedisError: errors.redis_error, HTTPException: errors.http_error},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # `/v1/messages/` is a 404, not a redirect to wherever Host says
    return app
