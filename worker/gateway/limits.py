"""How many streams one client holds open: an address, or a message token's holder."""

from __future__ import annotations

from collections import Counter

from starlette.requests import Request

from lcstream.worker.gateway.auth import Access


class ClientStreams:
    """Open streams per client, at most `limit` each."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: Counter[str] = Counter()

    @staticmethod
    def client_of(request: Request, access: Access) -> str:
        """Who a stream counts against: the message or run of a token (however many browsers hold it),
        else the client's address."""
        if not access.operator and (subject := access.message_id or access.run_id) is not None:
            return f"token:{subject}"
        return f"address:{request.client.host if request.client else '?'}"

    def acquire(self, client: str) -> bool:
        """Count one more stream of `client`; False (nothing counted) when it holds `limit` already."""
        if self._open[client] >= self._limit:
            return False
        self._open[client] += 1
        return True

    def release(self, client: str) -> None:
        """One stream of `client` ended."""
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]
