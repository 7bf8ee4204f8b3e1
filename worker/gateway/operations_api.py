"""The operations page and its data, for operators only: the sampler's figures, a dead letter's events,
and retry or delete of a dead-lettered message (what `lcstream dead retry|delete` do)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import orjson
from redis.exceptions import NoPermissionError
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from lcstream.streams.errors import InvalidMessageIdError, MessageNotFoundError
from lcstream.streams.events import EVENT_FIELD
from lcstream.worker.deadletters import (
    RetryRefusedError,
    delete_dead_letters,
    list_dead_letters,
    retry_dead_letter,
)
from lcstream.worker.gateway.api import STATIC_DIR, json_response
from lcstream.worker.gateway.errors import error
from lcstream.worker.gateway.state import Gateway, gateway_of

EVENTS_SHOWN = 1000  # of a dead letter's message, from the first


async def _operator(request: Request) -> Gateway | Response:
    gateway = gateway_of(request)
    refused = await gateway.authorize(request)  # neither a message nor a run: operators only
    return refused if isinstance(refused, Response) else gateway


async def page(request: Request) -> Response:
    """The operations page; without the operator's credential, the sign-in page with 401 (403 for a
    read token), so not even the page's code is served to a stranger."""
    gateway = gateway_of(request)
    refused = await gateway.authorize(request)
    if isinstance(refused, Response):
        return FileResponse(
            STATIC_DIR / "signin.html", status_code=refused.status_code, media_type="text/html"
        )
    return FileResponse(STATIC_DIR / "operations.html", media_type="text/html")


async def figures(request: Request) -> Response:
    """The sampler's view: samples after `?after=<seq>` (all without it), workers, dead letters."""
    if isinstance(gateway := await _operator(request), Response):
        return gateway
    after = request.query_params.get("after")
    if after is not None and not after.isdigit():
        return error("invalid_parameter", "after must be a sample's seq: a whole number")
    return json_response(gateway.operations.view(int(after) if after is not None else None))


async def dead_letter(request: Request) -> Response:
    """A dead-lettered message: its dead letters, outcome and (the first `EVENTS_SHOWN`) events."""
    if isinstance(gateway := await _operator(request), Response):
        return gateway
    message_id = request.path_params["message_id"]
    try:
        keys = gateway.keyspace.message(message_id)
    except InvalidMessageIdError as exc:
        return error("invalid_message_id", str(exc))
    redis = gateway.redis
    letters = await list_dead_letters(redis, gateway.keyspace, message_id=message_id)
    entries = await redis.xrange(keys.events, count=EVENTS_SHOWN)
    outcome = await redis.get(keys.result)
    if not letters and not entries and outcome is None:
        return error("not_found", f"nothing is known of message {message_id}")
    return json_response({
        "message_id": message_id,
        "letters": [dataclasses.asdict(letter) for letter in letters],
        "events": [
            {"id": entry_id.decode(), "raw": _raw(fields)} for entry_id, fields in entries
        ],
        "events_total": await redis.xlen(keys.events),
        "outcome": orjson.loads(outcome) if outcome is not None else None,
    })  # fmt: skip


async def retry(request: Request) -> Response:
    """Run a dead-lettered message again from its stored events (`lcstream dead retry`)."""

    async def announce(gateway: Gateway, message_id: str) -> dict[str, object]:
        return {"dispatch_id": await retry_dead_letter(gateway.redis, gateway.keyspace, message_id)}

    return await _act(request, "retry", announce)


async def delete(request: Request) -> Response:
    """Remove a message's dead letters (`lcstream dead delete`)."""

    async def remove(gateway: Gateway, message_id: str) -> dict[str, object]:
        return {"deleted": await delete_dead_letters(gateway.redis, gateway.keyspace, message_id)}

    return await _act(request, "delete", remove)


async def _act(
    request: Request, action: str, act: Callable[[Gateway, str], Awaitable[dict[str, object]]]
) -> Response:
    """An operator's action on a dead-lettered message, its refusals in the gateway's error codes."""
    if isinstance(gateway := await _operator(request), Response):
        return gateway
    message_id = request.path_params["message_id"]
    try:
        return json_response({"message_id": message_id, **await act(gateway, message_id)})
    except InvalidMessageIdError as exc:
        return error("invalid_message_id", str(exc))
    except RetryRefusedError as exc:
        return error("retry_refused", str(exc))
    except MessageNotFoundError as exc:
        return error("not_found", str(exc))
    except NoPermissionError:
        return error(
            "redis_refused",
            f"the gateway's Redis user may not {action} dead letters (the reader user of docs/security.md "
            f"reads only): run `lcstream dead {action}` with the worker's credentials instead",
        )


def _raw(fields: dict[bytes, bytes]) -> str:
    """An event entry as stored: its event (field `e`), or every field of an entry that has none."""
    if EVENT_FIELD in fields:
        return fields[EVENT_FIELD].decode(errors="replace")
    shown = {name.decode(errors="replace"): value.decode(errors="replace") for name, value in fields.items()}
    return orjson.dumps(shown).decode()
