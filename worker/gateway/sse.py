"""`GET /v1/messages/{id}/stream`: a message's frames as Server-Sent Events, resumable by seq.

A client starts after `Last-Event-ID` (a browser's EventSource sends it when
it reconnects), else after `?after=N`, else from the start, or with
`?snapshot=1` from a `snapshot` event of everything so far. A message of which
nothing exists is waited for `LCSTREAM_GATEWAY_WAIT_FOR_START_S`, then 404. It catches up
from `O(M)` and then joins the message's shared reader (see `hub`). The
stream ends after the terminal frame; a resume point at or past it gets 204,
which tells EventSource to stop reconnecting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar

import anyio
import structlog
from redis.exceptions import RedisError
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from lcstream.streams.errors import InvalidMessageIdError
from lcstream.streams.keys import MessageKeys
from lcstream.worker.gateway.auth import Access
from lcstream.worker.gateway.errors import error
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

    def __init__(
        self,
        content: AsyncIterator[bytes],
        feed: ClientFeed,
        gateway: Gateway,
        *,
        leave: Callable[[ClientFeed], None],
        release: Callable[[], None],
    ) -> None:
        self._leave = leave
        self._release = release
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
        except OSError as exc:  # the client went away mid-send (the kernel gave up on a reader that stopped)
            log.info("client-aborted", error=str(exc))
        finally:
            metrics.sse_clients.dec()
            self._leave(self._feed)
            self._release()

    async def _end_on_shutdown(self) -> None:
        # The server is stopping: end the stream after what is queued, with its last chunk, so the
        # client sees a clean end (and reconnects elsewhere with Last-Event-ID).
        await self._shutdown.wait()
        self._feed.close()


MAX_SEQ_DIGITS = 18  # a frame seq fits a signed 64-bit integer
FLAGS = {"1": True, "true": True, "0": False, "false": False, "": False}
EXISTS_POLLS_S = (0.05, 0.1, 0.2, 0.4)  # then every 0.4 s: prompt for a producer about to start, cheap after
BUSY_RETRY_AFTER_S = "5"


class ParameterError(ValueError):
    """A query parameter or header the endpoint can't take: says what is allowed."""


def _resume_point(request: Request) -> int | None:
    """`Last-Event-ID`, else `?after`, as a seq; None when the client starts fresh."""
    raw = request.headers.get("last-event-id") or request.query_params.get("after")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_SEQ_DIGITS):
        raise ParameterError(f"after (or Last-Event-ID) must be a frame seq: a non-negative integer of at "
                             f"most {MAX_SEQ_DIGITS} digits")  # fmt: skip
    return int(raw)


def _snapshot_flag(request: Request) -> bool:
    raw = request.query_params.get("snapshot", "0").lower()
    if raw not in FLAGS:
        raise ParameterError("snapshot must be 1, 0, true or false")
    return FLAGS[raw]


async def known_within(gateway: Gateway, *keys: str) -> bool:
    """Whether any of `keys` (of M: events, frames, outcome; of R: its index) exists, waiting up to the
    configured time for a producer that is about to start."""
    deadline = time.monotonic() + gateway.settings.gateway_wait_for_start_s
    polls = 0
    while not await gateway.redis.exists(*keys):
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            return False
        pause_s = EXISTS_POLLS_S[min(polls, len(EXISTS_POLLS_S) - 1)]
        await asyncio.sleep(min(pause_s, remaining_s))  # polling a key Redis does not announce; bounded
        polls += 1
    return True


async def stream_message(request: Request) -> Response:
    """The SSE endpoint."""
    gateway = gateway_of(request)
    raw_id = request.path_params["message_id"]
    access = await gateway.authorize(request, message_id=raw_id)
    if isinstance(access, Response):
        return access
    try:
        keys = gateway.keyspace.message(raw_id)
    except InvalidMessageIdError as exc:
        return error("invalid_message_id", str(exc))
    try:
        after, snapshot = _resume_point(request), _snapshot_flag(request)
    except ParameterError as exc:
        return error("invalid_parameter", str(exc))
    if not await known_within(gateway, keys.events, keys.out, keys.result):
        waited = gateway.settings.gateway_wait_for_start_s
        return error("not_found", f"nothing is known of message {keys.message_id} (waited {waited:g} s)")
    tail = await last_frame(gateway.redis, keys)
    tail_seq = tail.seq if tail is not None else 0
    if after is not None and after > tail_seq:
        message = f"resume point {after} is past the last frame of {keys.message_id} ({tail_seq})"
        return error("invalid_parameter", message)
    if after is not None and tail is not None and is_terminal(tail) and after >= tail.seq:
        return Response(status_code=204)  # nothing more will come: EventSource stops reconnecting
    admitted = admit(request, gateway, access, has_room=gateway.hubs.has_room_for(keys.message_id))
    if isinstance(admitted, Response):
        return admitted
    feed = ClientFeed(after or 0, gateway.settings.gateway_client_buffer)
    events = _events(gateway, keys, feed, snapshot=snapshot and after is None)
    return FrameStream(events, feed, gateway, leave=gateway.hubs.leave, release=admitted)


def admit(
    request: Request, gateway: Gateway, access: Access, *, has_room: bool
) -> Callable[[], None] | Response:
    """Count one more stream of the request's client; the call that gives its place back, or the 503
    (no room for another reader) or 429 (the client holds its limit) that refuses it."""
    if not has_room:
        busy = f"the gateway streams {gateway.settings.gateway_max_readers} messages (or runs) already"
        return error("gateway_busy", busy, headers={"Retry-After": BUSY_RETRY_AFTER_S})
    client = gateway.client_streams.client_of(request, access)
    if not gateway.client_streams.acquire(client):
        limit = gateway.settings.gateway_max_client_streams
        too_many = f"at most {limit} streams at once per client; close one first"
        return error("too_many_streams", too_many, headers={"Retry-After": BUSY_RETRY_AFTER_S})
    return lambda: gateway.client_streams.release(client)


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
