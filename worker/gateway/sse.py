"""`GET /v1/messages/{id}/stream`: a message's frames as Server-Sent Events, resumable by seq.

A client starts after `Last-Event-ID` (a browser's EventSource sends it when
it reconnects), else after `?after=N`, else from the start, or with
`?snapshot=1` from a `snapshot` event of everything so far. It catches up
from `O(M)` and then joins the message's shared reader (see `hub`). The
stream ends after the terminal frame; a resume point at or past it gets 204,
which tells EventSource to stop reconnecting.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextvars import ContextVar

import anyio
import structlog
from redis.exceptions import RedisError
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from lcstream.streams.errors import InvalidMessageIdError
from lcstream.streams.keys import MessageKeys
from lcstream.worker.gateway.history import PAGE_FRAMES, fold_snapshot, is_terminal, last_frame, read_page
from lcstream.worker.gateway.hub import ClientFeed
from lcstream.worker.gateway.sse_format import PREAMBLE, encode_frame, encode_snapshot
from lcstream.worker.gateway.state import Gateway, gateway_of

log = structlog.get_logger("lcstream.gateway")

PING_S = 15
SHUTDOWN_GRACE_S = 2.0

# uvicorn reports a response that ends without its last chunk as an error; for a client we cut off on
# purpose (its socket may be full, so no last chunk can be sent) that is the intended outcome.
_CUT_OFF = ContextVar("lcstream_gateway_cut_off", default=False)
_INCOMPLETE = "ASGI callable returned without completing response."


class CutOffFilter(logging.Filter):
    """Drops uvicorn's error line for responses the slow-client policy ended (install on `uvicorn.error`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_CUT_OFF.get() and record.getMessage() == _INCOMPLETE)


class FrameStream(EventSourceResponse):
    """An SSE response that the hub can end at once, even while a send waits on a full socket."""

    def __init__(self, content: AsyncIterator[bytes], feed: ClientFeed, gateway: Gateway) -> None:
        self._shutdown = anyio.Event()
        super().__init__(
            content,
            ping=PING_S,
            sep="\n",
            shutdown_event=self._shutdown,
            shutdown_grace_period=SHUTDOWN_GRACE_S,
        )
        self._feed = feed
        self._gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self._gateway.metrics
        metrics.sse_clients.inc()
        try:
            with anyio.CancelScope() as cut:
                self._feed.on_cut = cut.cancel
                async with anyio.create_task_group() as watcher:
                    watcher.start_soon(self._end_on_shutdown)
                    await super().__call__(scope, receive, send)
                    watcher.cancel_scope.cancel()
            if cut.cancelled_caught:
                _CUT_OFF.set(True)
        finally:
            metrics.sse_clients.dec()
            self._gateway.hubs.leave(self._feed)

    async def _end_on_shutdown(self) -> None:
        # The server is stopping: end the stream after what is queued, with its last chunk, so the
        # client sees a clean end (and reconnects elsewhere with Last-Event-ID).
        await self._shutdown.wait()
        self._feed.close()


def _resume_point(request: Request) -> int | None:
    """`Last-Event-ID`, else `?after`, as a seq; None when the client starts fresh."""
    raw = request.headers.get("last-event-id") or request.query_params.get("after")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise ValueError(f"resume point {raw[:40]!r} is not a frame seq (a non-negative integer)")
    return int(raw)


async def stream_message(request: Request) -> Response:
    """The SSE endpoint."""
    gateway = gateway_of(request)
    try:
        keys = gateway.keyspace.message(request.path_params["message_id"])
        after = _resume_point(request)
    except (InvalidMessageIdError, ValueError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    tail = await last_frame(gateway.redis, keys)
    tail_seq = tail.seq if tail is not None else 0
    if after is not None and after > tail_seq:
        error = f"resume point {after} is past the last frame of {keys.message_id} ({tail_seq})"
        return JSONResponse({"error": error}, status_code=400)
    if after is not None and tail is not None and is_terminal(tail) and after >= tail.seq:
        return Response(status_code=204)  # nothing more will come: EventSource stops reconnecting
    snapshot = after is None and request.query_params.get("snapshot") in ("1", "true")
    feed = ClientFeed(after or 0, gateway.settings.gateway_client_buffer)
    return FrameStream(_events(gateway, keys, feed, snapshot=snapshot), feed, gateway)


async def _events(
    gateway: Gateway, keys: MessageKeys, feed: ClientFeed, *, snapshot: bool
) -> AsyncIterator[bytes]:
    """The stream's bytes: the optional snapshot, catch-up from `O(M)`, then the hub's live frames."""
    redis, sent = gateway.redis, gateway.metrics.frames_sent
    cursor = feed.after
    try:
        yield PREAMBLE
        if snapshot:
            folded = await fold_snapshot(redis, keys)
            yield encode_snapshot(folded)
            cursor = folded.seq
            if folded.status in ("completed", "failed"):
                return
        while True:  # catch up page by page until the hub has nothing this client lacks
            page = await read_page(redis, keys, after=cursor)
            for frame in page:
                yield encode_frame(frame).payload
                sent.inc()
                cursor = frame.seq
                if is_terminal(frame):
                    return
            if len(page) == PAGE_FRAMES:
                continue  # more history: a hub started here would read it all at once
            feed.after = cursor
            if gateway.hubs.join(keys.message_id, feed):
                break
            if not page:
                return  # the hub is ahead yet O(M) has nothing new: the message's keys expired
        while (live := await feed.next()) is not None:
            if live.seq <= cursor:
                continue
            yield live.payload
            sent.inc()
            cursor = live.seq
            if live.terminal:
                return
    except (RedisError, OSError) as exc:
        # End the stream cleanly; the client resumes with Last-Event-ID once Redis is back.
        log.warning("stream-aborted", message_id=keys.message_id, seq=cursor, error=str(exc))
