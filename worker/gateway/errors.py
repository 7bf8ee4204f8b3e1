"""Every error the gateway answers: `{"error": {"code": ..., "message": ...}}`, a stable code, never a
traceback or a library's internal text."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
import structlog
from redis.exceptions import RedisError, ResponseError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response

log = structlog.get_logger("lcstream.gateway")

# code -> HTTP status: the whole vocabulary (docs/gateway.md lists it).
CODES = {
    "invalid_message_id": 400,
    "invalid_run_id": 400,
    "invalid_parameter": 400,
    "cors_refused": 400,
    "unauthorized": 401,
    "invalid_token": 401,
    "forbidden": 403,
    "redis_refused": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "wrong_type": 409,
    "retry_refused": 409,
    "too_many_streams": 429,
    "redis_unavailable": 503,
    "gateway_busy": 503,
}


def error(code: str, message: str, *, headers: Mapping[str, str] | None = None) -> Response:
    """The JSON error response of `code`."""
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return Response(body, status_code=CODES[code], media_type="application/json", headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no such route, a method not allowed) in the same shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error("method_not_allowed", f"{request.method} is not allowed on {request.url.path}")
    return error("not_found", f"no such endpoint: {request.url.path}")


async def redis_error(request: Request, exc: Exception) -> Response:
    """Redis failing under a request: 503 (or 409 for a key of the wrong type), logged, not shown."""
    if isinstance(exc, ResponseError) and "WRONGTYPE" in str(exc):
        return error("wrong_type", "a key of this message holds a value of another type")
    assert isinstance(exc, RedisError)
    log.warning("redis-unavailable", path=request.url.path, error=str(exc))
    return error("redis_unavailable", "Redis is unavailable; retry later", headers={"Retry-After": "1"})


class JsonCorsMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in the gateway's error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        """A preflight's answer: Starlette's, or for a refusal the same headers with a JSON body."""
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")  # "origin", "method", ...
        headers = {k: v for k, v in response.headers.items() if k.startswith("access-control") or k == "vary"}
        return error(
            "cors_refused", f"this {refused} may not call the gateway (LCSTREAM_GATEWAY_CORS_ORIGINS)",
            headers=headers,
        )  # fmt: skip


def shown_id(message_id: str) -> str:
    """`message_id` as an error message quotes it: at most 80 characters."""
    return message_id if len(message_id) <= 80 else f"{message_id[:80]}…"
