"""The gateway's Prometheus metrics, in a registry of its own."""

from __future__ import annotations

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
