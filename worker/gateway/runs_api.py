"""The gateway's run endpoints: `GET /v1/runs` (recent runs), `GET /v1/runs/{R}` (status and messages),
`GET /v1/runs/{R}/stream` (SSE: the frames of every message of the run, then `end`).

A run's stream resumes after `Last-Event-ID` (or `?after=`): the run cursor of
the last event received (`run_hub`). Who may call what: `Gateway.authorize` (a
run's read token opens the run and the messages it lists).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response

from lcstream.streams.errors import InvalidMessageIdError, RunFailedError
from lcstream.streams.run_index import RunEnding, RunMember, index_entries
from lcstream.streams.subscribe_run import parse_cursor, subscribe_run
from lcstream.worker.gateway.api import json_response
from lcstream.worker.gateway.errors import error
from lcstream.worker.gateway.hub import ClientFeed
from lcstream.worker.gateway.run_hub import END_ID, RunHub, run_end_event, run_frame_event
from lcstream.worker.gateway.sse import FrameStream, admit, known_within
from lcstream.worker.gateway.sse_format import PREAMBLE
from lcstream.worker.gateway.state import Gateway, gateway_of


async def list_runs(request: Request) -> Response:
    """Recent runs from the run notices this gateway heard, newest first (operators)."""
    gateway = gateway_of(request)
    if isinstance(refused := await gateway.authorize(request), Response):
        return refused
    return json_response(
        {"runs": gateway.notices.recent_runs(), "listening_since": gateway.notices.listening_since}
    )


async def get_run(request: Request) -> Response:
    """200 with the run's status (`running`, `completed`, `failed`, `interrupted`) and its messages in
    start order; 404 when R has no index."""
    gateway = gateway_of(request)
    raw_id = request.path_params["run_id"]
    if isinstance(refused := await gateway.authorize(request, run_id=raw_id), Response):
        return refused
    try:
        index = gateway.keyspace.run(raw_id).index
    except InvalidMessageIdError as exc:
        return error("invalid_run_id", str(exc).replace("message id", "run id"))
    entries = await gateway.redis.xrange(index)
    if not entries:
        return error("not_found", f"nothing is known of run {raw_id}")
    parsed = index_entries(entries)
    ending = parsed[-1] if isinstance(parsed[-1], RunEnding) else None
    messages = [
        {"message_id": m.message_id, "namespace": m.namespace, "node": m.node}
        for m in parsed
        if isinstance(m, RunMember)
    ]
    status, failure = (ending.status, ending.error) if ending else ("running", None)
    return json_response({"run_id": raw_id, "status": status, "error": failure, "messages": messages})


async def stream_run(request: Request) -> Response:
    """The run's SSE endpoint."""
    gateway = gateway_of(request)
    raw_id = request.path_params["run_id"]
    access = await gateway.authorize(request, run_id=raw_id)
    if isinstance(access, Response):
        return access
    try:
        index = gateway.keyspace.run(raw_id).index
    except InvalidMessageIdError as exc:
        return error("invalid_run_id", str(exc).replace("message id", "run id"))
    cursor = request.headers.get("last-event-id") or request.query_params.get("after") or None
    if cursor == END_ID:
        return Response(status_code=204)  # the run ended and the client has it all: EventSource stops
    try:
        parse_cursor(cursor)
    except ValueError as exc:
        return error("invalid_parameter", f"{exc} (after or Last-Event-ID: an event id of this stream)")
    if not await known_within(gateway, index):
        waited = gateway.settings.gateway_wait_for_start_s
        return error("not_found", f"nothing is known of run {raw_id} (waited {waited:g} s)")
    admitted = admit(request, gateway, access, has_room=gateway.runs.has_room_for(raw_id))
    if isinstance(admitted, Response):
        return admitted
    capacity = gateway.settings.gateway_client_buffer
    shared = gateway.runs.existing(raw_id)
    if cursor is not None and (shared is None or shared.position_of(cursor) is None):
        own = ClientFeed(0, capacity)  # a cursor no hub here knows: a reader of its own, from it
        return FrameStream(
            _own_reader(gateway, raw_id, cursor), own, gateway, leave=lambda _: None, release=admitted
        )
    hub = gateway.runs.watch(raw_id)
    feed = ClientFeed(hub.position_of(cursor) or 0, capacity)
    return FrameStream(hub_events(hub, feed), feed, gateway, leave=gateway.runs.leaver(hub), release=admitted)


async def hub_events(hub: RunHub, feed: ClientFeed) -> AsyncIterator[bytes]:
    """The hub's log from the client's position, then its live events."""
    yield PREAMBLE
    position = feed.after
    while True:  # everything the log holds, then join: no event can come between the check and the join
        while position < len(hub.log):
            logged = hub.log[position]
            yield logged.payload
            position += 1
            if logged.terminal:
                return
        feed.after = position
        if hub.add(feed):
            break
        if hub.ended:
            return  # its reader failed before the end: the client resumes (Last-Event-ID) on a new one
    while (event := await feed.next()) is not None:
        if event.seq <= position:
            continue
        yield event.payload
        position = event.seq
        if event.terminal:
            return


async def _own_reader(gateway: Gateway, run_id: str, cursor: str) -> AsyncIterator[bytes]:
    """The run after `cursor`, read for this client alone."""
    yield PREAMBLE
    try:
        async for item in subscribe_run(
            gateway.redis,
            run_id,
            after=cursor,
            keyspace=gateway.keyspace,
            wait_for_start_s=None,
            live=gateway.live,
        ):
            yield run_frame_event(0, item).payload
        yield run_end_event(0, "completed", None).payload
    except RunFailedError as exc:
        yield run_end_event(0, exc.status, {"message": exc.error_message, "code": exc.code}).payload
