"""A bare blocking RESP connection (hiredis packing and parsing) for the generator and the subscriber.

redis-py's per-command overhead would make the load generator itself the bottleneck
at 50,000 events/s on a shared 2-core machine; this writes a whole batch with one
`sendall` and parses replies in C.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import hiredis

Arg = str | bytes | int | float


def pack(*args: Arg) -> bytes:
    """One command in RESP, packed by hiredis."""
    # hiredis's stub types the argument as a 1-tuple (`tuple[X]`, not `tuple[X, ...]`).
    packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]
    return packed


class RespConnection:
    """One TCP connection to a redis-server, from a `redis://host:port/db` URL."""

    def __init__(self, redis_url: str) -> None:
        parts = urlsplit(redis_url)
        self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = hiredis.Reader()
        self.errors = 0  # error replies `write` met, and the first one's text
        self.first_error = ""

    def write(self, payload: bytes, count: int) -> None:
        """Send `count` packed commands and read their replies, counting the errors."""
        self.send(payload)
        for reply in self.replies(count):
            if isinstance(reply, hiredis.ReplyError):
                self.errors += 1
                self.first_error = self.first_error or str(reply)

    def send(self, payload: bytes) -> None:
        """Write packed commands (`pack(...)`, concatenated)."""
        self.sock.sendall(payload)

    def replies(self, count: int) -> list[Any]:
        """Read exactly `count` replies; errors come back as `hiredis.ReplyError` values, not raised."""
        found: list[Any] = []
        while len(found) < count:
            reply = self.reader.gets()
            if reply is False:
                self._receive()
            else:
                found.append(reply)
        return found

    def stream(self, *, poll_s: float, until: float) -> Iterator[tuple[int, list[Any]]]:
        """Yield (receive time in unix µs, replies parsed from that read) until `until` (monotonic).

        Yields `(now, [])` every `poll_s` when nothing arrives, so the caller can stop.
        """
        self.sock.settimeout(poll_s)
        while time.monotonic() < until:
            try:
                received_us = self._receive()
            except TimeoutError:
                yield time.time_ns() // 1000, []
                continue
            batch = []
            while (reply := self.reader.gets()) is not False:
                batch.append(reply)
            yield received_us, batch

    def _receive(self) -> int:
        data = self.sock.recv(1 << 20)
        received_us = time.time_ns() // 1000  # right after the bytes reached this process
        if not data:
            raise ConnectionError("redis-server closed the connection")
        self.reader.feed(data)
        return received_us

    def close(self) -> None:
        self.sock.close()
