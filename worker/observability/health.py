"""Liveness and readiness of a worker, served with its metrics over HTTP, and the probe that asks.

Live: the event loop still turns (a ticker a second; stale after
`STALE_AFTER_S`). Ready: live, not stopping, and every partition's last
Redis round succeeded. A worker that lost Redis stays live (it retries with
back-off; restarting it would not help) but is not ready.

The endpoints run in a thread beside the event loop (`wsgiref` + prometheus
client's WSGI app), so a scrape or probe never waits on a busy round, and a
stuck loop still answers "not live".
"""

from __future__ import annotations

import asyncio
import contextlib
import socketserver
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from prometheus_client import CollectorRegistry, make_wsgi_app

from lcstream.config import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = structlog.get_logger("lcstream.worker")

STALE_AFTER_S = 10.0
TICK_S = 1.0


class Health:
    """What the probes report; updated by the worker's loops, read from the server's thread."""

    def __init__(self, partitions: int) -> None:
        self._ticked_at = time.monotonic()
        self._unavailable = set(range(partitions))  # not ready until each partition's first round
        self.stopping = False

    def redis_ok(self, partition: int) -> None:
        """A round of `partition` went through."""
        self._unavailable.discard(partition)

    def redis_lost(self, partition: int) -> None:
        """`partition` hit a Redis fault and is backing off."""
        self._unavailable.add(partition)

    async def tick_forever(self) -> None:
        """Prove the event loop turns (run as a task for the worker's lifetime)."""
        while True:
            self._ticked_at = time.monotonic()
            await asyncio.sleep(TICK_S)

    def live(self) -> tuple[bool, str]:
        """Whether the event loop ticked recently, and why not."""
        age_s = time.monotonic() - self._ticked_at
        if age_s > STALE_AFTER_S:
            return False, f"event loop stalled: last tick {age_s:.1f} s ago"
        return True, "live"

    def ready(self) -> tuple[bool, str]:
        """Whether the worker serves its partitions, and why not."""
        live, why = self.live()
        if not live:
            return False, why
        if self.stopping:
            return False, "stopping"
        if unavailable := sorted(self._unavailable):
            return False, f"Redis unavailable for partitions {unavailable}"
        return True, "ready"


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Probes every few seconds would flood the log."""


class ProbeServer:
    """`/metrics`, `/livez` and `/readyz` on `host:port`, in a daemon thread."""

    def __init__(self, host: str, port: int, health: Health, registry: CollectorRegistry) -> None:
        metrics_app = make_wsgi_app(registry)

        def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/metrics":
                body: Iterable[bytes] = metrics_app(environ, start_response)
                return body
            if path in ("/livez", "/readyz"):
                ok, why = health.live() if path == "/livez" else health.ready()
                status = "200 OK" if ok else "503 Service Unavailable"
                start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
                return [f"{why}\n".encode()]
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: /metrics, /livez or /readyz\n"]

        self._server = make_server(host, port, app, _ThreadingServer, _QuietHandler)
        self.port: int = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="probes", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@contextlib.contextmanager
def serving_probes(
    settings: Settings, health: Health, registry: CollectorRegistry
) -> Iterator[ProbeServer | None]:
    """Serve the endpoints while the block runs, when `metrics_port` turns them on."""
    if not settings.metrics_port:
        yield None
        return
    server = ProbeServer(settings.metrics_host, settings.metrics_port, health, registry)
    log.info("probes-serving", host=settings.metrics_host, port=server.port)
    try:
        yield server
    finally:
        server.close()


def probe(host: str, port: int, *, live_only: bool = False, timeout_s: float = 2.0) -> tuple[bool, str]:
    """Ask a worker's `/readyz` (or `/livez`); return whether it said yes, and what it said."""
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - a listen-all address
    path = "/livez" if live_only else "/readyz"
    url = f"http://{host}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return True, response.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return False, exc.read().decode().strip() or f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"no worker answers at {url}: {exc}"
