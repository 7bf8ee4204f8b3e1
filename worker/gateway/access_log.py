"""ASGI middleware around every HTTP request: one structured log line, a count by route and status,
and the headers that keep credentials out of other sites' hands.

The line carries the path without its query string: a browser's `?token=` never reaches a log
(uvicorn's own access log, which prints the query, is off).
"""

from __future__ import annotations

import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lcstream.worker.gateway.metrics import GatewayMetrics

log = structlog.get_logger("lcstream.gateway")

# No Referer to other sites (a stream URL may hold a token); no MIME sniffing of JSON or event streams.
SECURITY_HEADERS = [(b"referrer-policy", b"no-referrer"), (b"x-content-type-options", b"nosniff")]


class AccessLog:
    """Logs and counts each request when its response starts (an SSE stream starts long before it
    ends), by route template, so the metric's label set stays small."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started_at = time.monotonic()
        answered = False

        def record(status: int) -> None:
            nonlocal answered
            if answered:
                return
            answered = True
            route = getattr(scope.get("route"), "path", "unmatched")
            self._metrics.requests.labels(route, str(status)).inc()
            client = scope.get("client")
            log.info(
                "request", method=scope["method"], path=scope["path"], status=status,
                client=client[0] if client else None, ms=round((time.monotonic() - started_at) * 1000, 1),
            )  # fmt: skip

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record(message["status"])
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        try:
            await self._app(scope, receive, observed_send)
        finally:
            record(500)  # the app failed before it started a response
