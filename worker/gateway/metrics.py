"""The gateway's Prometheus metrics, in a registry of its own, and the middleware that counts requests."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lcstream.worker.observability.registry import MetricSet
from lcstream.worker.observability.worker_metrics import BacklogGauges


class GatewayMetrics(MetricSet):
    """Counters and gauges of one gateway app."""

    def __init__(self) -> None:
        super().__init__()
        self.sse_clients = self.gauge("lcstream_gateway_sse_clients", "SSE clients connected now.")
        self.readers = self.gauge("lcstream_gateway_readers", "Messages with a Redis reader running now.")
        self.readers_started = self.counter(
            "lcstream_gateway_readers_started",
            "Redis readers started (one per message while it has SSE clients).",
        )
        self.frames_sent = self.counter("lcstream_gateway_frames_sent", "Frames sent to SSE clients.")
        self.clients_cut = self.counter(
            "lcstream_gateway_clients_cut",
            "SSE clients cut off for falling more than the client buffer behind.",
        )
        self.backlog = BacklogGauges(self)  # read from Redis at each scrape
        self.requests = self.counter(
            "lcstream_gateway_requests",
            "HTTP requests by route and status (counted when the response starts).",
            ["route", "status"],
        )


class RequestCounter:
    """ASGI middleware: counts each HTTP request by its route template and response status."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        counted = False

        def count(status: int) -> None:
            nonlocal counted
            if not counted:
                counted = True
                # The router put the matched route into the scope; its template keeps the label set small.
                route = getattr(scope.get("route"), "path", "unmatched")
                self._metrics.requests.labels(route, str(status)).inc()

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                count(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, counting_send)
        finally:
            count(500)  # the app failed before it started a response
