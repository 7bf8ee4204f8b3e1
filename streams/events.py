"""The wire codec of `E(M)` entries: protocol event <-> stream entry, with limits and shape checks.

An entry carries field `e` (the event as JSON, a `MessagesData` dict of
`langchain-protocol`) and optionally `t` (producer time, unix ms). Decoding
never trusts the entry: size, UTF-8, JSON, nesting depth and the shape of the
known event kinds are checked before anything reaches a stream. Event kinds
the protocol does not know pass through: the protocol says to ignore them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from lcstream.streams.errors import EventDecodeError

EVENT_FIELD = b"e"
TIME_FIELD = b"t"
TERMINAL_EVENTS = frozenset({"message-finish", "error"})
# Unix ms has 13 digits until the year 2286; longer is garbage, not a time.
MAX_TIME_DIGITS = 15

Event = dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventLimits:
    """What one event entry may weigh."""

    max_event_bytes: int = 1_048_576
    max_json_depth: int = 32


def now_ms() -> int:
    """Unix time in milliseconds, as written to the `t` field."""
    return time.time_ns() // 1_000_000


def encode_event(event: Mapping[str, Any], *, time_ms: int | None = None) -> dict[bytes, bytes]:
    """Return the stream-entry fields of `event`."""
    fields = {EVENT_FIELD: orjson.dumps(event)}
    if time_ms is not None:
        fields[TIME_FIELD] = str(time_ms).encode()
    return fields


def decode_event(fields: Mapping[bytes, bytes], limits: EventLimits) -> Event:
    """Decode and check one entry's fields.

    Raises:
        EventDecodeError: the entry can't be a protocol event; its `reason` says why.
    """
    raw = fields.get(EVENT_FIELD)
    if raw is None:
        raise EventDecodeError("missing_field", "entry has no 'e' field")
    if len(raw) > limits.max_event_bytes:
        raise EventDecodeError("too_large", f"event is {len(raw)} bytes, limit is {limits.max_event_bytes}")
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventDecodeError("invalid_json", str(exc)) from None
    if not isinstance(event, dict):
        raise EventDecodeError("invalid_shape", f"event must be a JSON object, got {type(event).__name__}")
    # Nesting needs an opening bracket per level: most events can't be too deep, skip the walk.
    if raw.count(b"{") + raw.count(b"[") > limits.max_json_depth:
        _check_depth(event, limits.max_json_depth)
    _check_shape(event)
    return event


def decode_time_ms(fields: Mapping[bytes, bytes]) -> int | None:
    """The producer time of an entry, or None when absent, unreadable or not after 1970.

    A time in the future is returned as written: readers clamp it to when they read it.
    """
    raw = fields.get(TIME_FIELD)
    if raw is None or len(raw) > MAX_TIME_DIGITS:
        return None
    try:
        time_ms = int(raw)
    except ValueError:
        return None
    return time_ms if time_ms > 0 else None


def _check_depth(event: Event, max_depth: int) -> None:
    stack: list[tuple[Any, int]] = [(event, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            raise EventDecodeError("too_deep", f"JSON nesting exceeds {max_depth} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, dict | list))


def _require(event: Event, field: str, kind: type | tuple[type, ...], *, optional: bool = False) -> None:
    if field not in event:
        if optional:
            return
        raise EventDecodeError("invalid_shape", f"{event['event']} event needs field {field!r}")
    value = event[field]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise EventDecodeError(
            "invalid_shape",
            f"{event['event']} field {field!r} has type {type(value).__name__}",
        )


def _check_block(event: Event, *names: str) -> None:
    block = next((event[n] for n in names if n in event), None)
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise EventDecodeError(
            "invalid_shape", f"{event['event']} needs {names[0]!r}: an object with a string 'type'"
        )


def _check_index(event: Event) -> None:
    _require(event, "index", int)
    if event["index"] < 0:
        raise EventDecodeError("invalid_shape", f"{event['event']} index must not be negative")


def _check_shape(event: Event) -> None:
    kind = event.get("event")
    if kind == "content-block-delta":  # one per token: the common case is checked without calls
        index = event.get("index")
        block = event["delta"] if "delta" in event else event.get("content_block")
        if type(index) is int and index >= 0 and type(block) is dict and type(block.get("type")) is str:
            return
    if not isinstance(kind, str):
        raise EventDecodeError("invalid_shape", "event needs a string field 'event'")
    if kind == "message-start":
        _require(event, "id", str, optional=True)
        _require(event, "metadata", dict, optional=True)
    elif kind in ("content-block-start", "content-block-finish"):
        _check_index(event)
        _check_block(event, "content", "content_block")
    elif kind == "content-block-delta":
        _check_index(event)
        _check_block(event, "delta", "content_block")
    elif kind == "message-finish":
        _require(event, "usage", dict, optional=True)
        _require(event, "metadata", dict, optional=True)
    elif kind == "error":
        _require(event, "message", str)
        _require(event, "code", str, optional=True)
