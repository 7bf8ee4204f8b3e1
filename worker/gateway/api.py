"""The gateway's plain HTTP endpoints: a message's outcome, recent messages, health, metrics, the page."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from lcstream.streams.errors import InvalidMessageIdError
from lcstream.streams.groups import group_backlog
from lcstream.worker.gateway.history import last_frame
from lcstream.worker.gateway.state import gateway_of

STATIC_DIR = Path(__file__).resolve().parent / "static"
PING_TIMEOUT_S = 2.0


def _json(body: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


async def get_message(request: Request) -> Response:
    """200 with the outcome `R(M)`; 202 while it streams (`seq`: frames so far); 404 when unknown."""
    gateway = gateway_of(request)
    try:
        keys = gateway.keyspace.message(request.path_params["message_id"])
    except InvalidMessageIdError as exc:
        return _json({"error": str(exc)}, 400)
    outcome = await gateway.redis.get(keys.result)
    if outcome is not None:
        return Response(outcome, media_type="application/json")  # R(M) is the outcome JSON as stored
    tail = await last_frame(gateway.redis, keys)
    if tail is not None:
        return _json({"status": "streaming", "seq": tail.seq}, 202)
    # XRANGE, not EXISTS: the gateway stays within the reader ACL user of docs/security.md.
    if await gateway.redis.xrange(keys.events, count=1):
        return _json({"status": "waiting", "seq": 0}, 202)  # events written, no worker on it yet
    return _json({"error": f"nothing known of message {keys.message_id}"}, 404)


async def list_messages(request: Request) -> Response:
    """Recent and active messages from the lifecycle notices this gateway heard, newest first."""
    notices = gateway_of(request).notices
    return _json({"messages": notices.recent(), "listening_since": notices.listening_since})


async def healthz(request: Request) -> Response:
    """200 when Redis answers PING within the timeout, else 503."""
    try:
        async with asyncio.timeout(PING_TIMEOUT_S):
            await gateway_of(request).redis.ping()
    except (RedisError, OSError) as exc:  # TimeoutError is an OSError
        return _json({"status": "unavailable", "error": str(exc) or type(exc).__name__}, 503)
    return _json({"status": "ok"})


async def metrics(request: Request) -> Response:
    """Prometheus text format; the consumer group's backlog is read from Redis for each scrape (the
    gateway stays up while every worker is down, which is when the backlog matters)."""
    gateway = gateway_of(request)
    group = gateway.settings.group
    for k, dispatch in enumerate(gateway.keyspace.all_dispatch()):
        if (backlog := await group_backlog(gateway.redis, dispatch, group)) is not None:
            gateway.metrics.backlog.record(k, backlog)
    return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def dashboard(request: Request) -> Response:
    """The live dashboard page."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


async def redis_unavailable(request: Request, exc: Exception) -> Response:
    """Exception handler: RedisClient failing under a request is a 503, not a 500 with a traceback."""
    return JSONResponse({"error": f"Redis unavailable: {exc}"}, status_code=503)
