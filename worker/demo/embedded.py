"""An in-process Redis (fakeredis over TCP) for the demo: nothing to install, nothing left behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fakeredis import TcpFakeServer


@contextmanager
def embedded_redis() -> Iterator[str]:
    """Serve an in-memory Redis on a free loopback port; yield its URL."""
    server = TcpFakeServer(("127.0.0.1", 0), server_version=(7, 2))
    server.daemon_threads = True  # a client that forgot to close must not hang the exit
    thread = threading.Thread(target=server.serve_forever, name="embedded-redis", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"redis://{host!s}:{port}/0"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
