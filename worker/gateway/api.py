"""The gateway's plain HTTP endpoints: a message's outcome, recent messages, sessions, health, metrics,
the dashboard page. Who may call what: `auth`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from lcstream.streams.errors import InvalidMessageIdError
from lcstream.streams.groups import group_backlog
from lcstream.worker.gateway.auth import SESSION_COOKIE
from lcstream.worker.gateway.errors import error
from lcstream.worker.gateway.history import last_frame
from lcstream.worker.gateway.state import gateway_of

STATIC_DIR = Path(__file__).resolve().parent / "static"
PING_TIMEOUT_S = 2.0


def json_response(body: object, status_code: int = 200) -> Response:
    """`body` as a JSON response."""
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


async def get_message(request: Request) -> Response:
    """200 with the outcome `R(M)`; 202 while it streams (`seq`: frames so far); 404 when unknown."""
    gateway = gateway_of(request)
    raw_id = request.path_params["message_id"]
    if isinstance(refused := await gateway.authorize(request, message_id=raw_id), Response):
        return refused
    try:
        keys = gateway.keyspace.message(raw_id)
    except InvalidMessageIdError as exc:
        return error("invalid_message_id", str(exc))
    outcome = await gateway.redis.get(keys.result)
    if outcome is not None:
        return Response(outcome, media_type="application/json")  # R(M) is the outcome JSON as stored
    tail = await last_frame(gateway.redis, keys)
    if tail is not None:
        return json_response({"status": "streaming", "seq": tail.seq}, 202)
    if await gateway.redis.exists(keys.events):
        return json_response({"status": "waiting", "seq": 0}, 202)  # events written, no worker on it yet
    return error("not_found", f"nothing is known of message {keys.message_id}")


async def list_messages(request: Request) -> Response:
    """Recent and active messages from the lifecycle notices this gateway heard, newest first."""
    gateway = gateway_of(request)
    if isinstance(refused := await gateway.authorize(request), Response):
        return refused
    notices = gateway.notices
    return json_response({"messages": notices.recent(), "listening_since": notices.listening_since})


async def open_session(request: Request) -> Response:
    """An operator's dashboard session: `Authorization: Bearer <operator token>` in, a cookie out."""
    authority = gateway_of(request).authority
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    session = authority.operator_session(presented) if scheme.lower() == "bearer" else None
    if session is None:
        return error("unauthorized", "POST the operator token as Authorization: Bearer <token>")
    response = json_response({"session": "open", "expires_in_s": authority.session_ttl_s})
    response.set_cookie(
        SESSION_COOKIE, session, max_age=authority.session_ttl_s, path="/", httponly=True,
        samesite="strict", secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


async def close_session(request: Request) -> Response:
    """End the dashboard session (the cookie is dropped)."""
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


async def healthz(request: Request) -> Response:
    """200 when Redis answers PING within the timeout, else 503 (open: it tells nothing of messages)."""
    try:
        async with asyncio.timeout(PING_TIMEOUT_S):
            await gateway_of(request).redis.ping()
    except (RedisError, OSError):  # TimeoutError is an OSError
        return error("redis_unavailable", "Redis does not answer", headers={"Retry-After": "1"})
    return json_response({"status": "ok"})


async def metrics(request: Request) -> Response:
    """Prometheus text format (operators); the consumer group's backlog is read from Redis for each
    scrape (the gateway stays up while every worker is down, which is when the backlog matters)."""
    gateway = gateway_of(request)
    if isinstance(refused := await gateway.authorize(request), Response):
        return refused
    group = gateway.settings.group
    for k, dispatch in enumerate(gateway.keyspace.all_dispatch()):
        if (backlog := await group_backlog(gateway.redis, dispatch, group)) is not None:
            gateway.metrics.backlog.record(k, backlog)
    return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def dashboard(request: Request) -> Response:
    """The live dashboard page (it holds no data: what it shows, it fetches with the visitor's access)."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")
