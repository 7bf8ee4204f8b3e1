"""Tests of streams/events.py: the entry codec, its limits and shape checks."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lcstream.streams.errors import EventDecodeError, Severity
from lcstream.streams.events import (
    EVENT_FIELD,
    TERMINAL_EVENTS,
    TIME_FIELD,
    EventLimits,
    decode_event,
    decode_time_ms,
    encode_event,
    now_ms,
)

LIMITS = EventLimits()

VALID_EVENTS: list[dict[str, Any]] = [
    {"event": "message-start", "role": "ai", "id": "lc_run--42", "metadata": {"provider": "p"}},
    {"event": "message-start"},
    {"event": "content-block-start", "index": 0, "content": {"type": "text", "text": ""}},
    {"event": "content-block-start", "index": 1, "content_block": {"type": "reasoning", "reasoning": ""}},
    {
        "event": "content-block-delta",
        "index": 0,
        "delta": {"type": "text-delta", "text": "h\u00e9 \U0001f642"},
    },
    {"event": "content-block-delta", "index": 2, "delta": {"type": "tool-call-delta", "args": '{"a"'}},
    {"event": "content-block-delta", "index": 0, "content_block": {"type": "text", "text": "legacy"}},
    {"event": "content-block-finish", "index": 0, "content": {"type": "text", "text": "done"}},
    {"event": "message-finish"},
    {"event": "message-finish", "usage": {"input_tokens": 1}, "metadata": {"model_name": "m"}},
    {"event": "error", "message": "provider overloaded"},
    {"event": "error", "message": "provider overloaded", "code": "overloaded"},
]


def raw(event: Any) -> dict[bytes, bytes]:
    """Entry fields carrying `event` as JSON, whatever it is."""
    return {EVENT_FIELD: orjson.dumps(event)}


def decode_error(fields: dict[bytes, bytes], limits: EventLimits = LIMITS) -> EventDecodeError:
    with pytest.raises(EventDecodeError) as caught:
        decode_event(fields, limits)
    return caught.value


@pytest.mark.parametrize("event", VALID_EVENTS, ids=lambda e: str(e["event"]))
def test_round_trip(event: dict[str, Any]) -> None:
    fields = encode_event(event, time_ms=1_700_000_000_123)
    assert set(fields) == {EVENT_FIELD, TIME_FIELD}
    assert json.loads(fields[EVENT_FIELD]) == event
    assert fields[TIME_FIELD] == b"1700000000123"
    assert decode_event(fields, LIMITS) == event
    assert decode_time_ms(fields) == 1_700_000_000_123


def test_encode_without_time_has_no_t_field() -> None:
    fields = encode_event({"event": "message-finish"})
    assert set(fields) == {EVENT_FIELD}
    assert decode_time_ms(fields) is None


@pytest.mark.parametrize("value", [b"", b"soon", b"1.5", b"\xff", b"0", b"-5", b"9" * 30])
def test_unreadable_time_is_none(value: bytes) -> None:
    assert decode_time_ms({EVENT_FIELD: b"{}", TIME_FIELD: value}) is None


def test_now_ms_is_unix_milliseconds() -> None:
    first = now_ms()
    second = now_ms()
    assert 1_600_000_000_000 < first <= second < 10_000_000_000_000


def test_terminal_events() -> None:
    assert frozenset({"message-finish", "error"}) == TERMINAL_EVENTS


def test_missing_field() -> None:
    error = decode_error({TIME_FIELD: b"1", b"x": b"{}"})
    assert error.reason == "missing_field"
    assert "'e'" in error.detail


def test_too_large_at_the_limit_boundary() -> None:
    limits = EventLimits(max_event_bytes=64)
    base = {"event": "message-finish", "metadata": {"pad": ""}}
    pad = 64 - len(orjson.dumps(base))
    exact = {"event": "message-finish", "metadata": {"pad": "x" * pad}}
    assert len(orjson.dumps(exact)) == 64
    assert decode_event(raw(exact), limits) == exact

    over = {"event": "message-finish", "metadata": {"pad": "x" * (pad + 1)}}
    error = decode_error(raw(over), limits)
    assert error.reason == "too_large"
    assert "65" in error.detail
    assert "64" in error.detail


def test_too_large_is_checked_before_parsing() -> None:
    error = decode_error({EVENT_FIELD: b"not json at all" * 10}, EventLimits(max_event_bytes=64))
    assert error.reason == "too_large"


@pytest.mark.parametrize(
    "payload",
    [b"", b"{", b'{"event": "message-start"', b"\xff\xfe", b'{"event": "\xff"}', b"nul", b"{'event': 1}"],
)
def test_invalid_json(payload: bytes) -> None:
    assert decode_error({EVENT_FIELD: payload}).reason == "invalid_json"


@pytest.mark.parametrize(
    "event",
    [
        [1, 2],
        "message-start",
        1,
        None,
        {"index": 0},
        {"event": 5},
        {"event": None},
        {"event": ["message-start"]},
        {"event": "content-block-delta", "delta": {"type": "text-delta", "text": "x"}},
        {"event": "content-block-delta", "index": True, "delta": {"type": "text-delta", "text": "x"}},
        {"event": "content-block-delta", "index": "0", "delta": {"type": "text-delta", "text": "x"}},
        {"event": "content-block-delta", "index": 1.0, "delta": {"type": "text-delta", "text": "x"}},
        {"event": "content-block-delta", "index": -1, "delta": {"type": "text-delta", "text": "x"}},
        {"event": "content-block-delta", "index": 0, "delta": "x"},
        {"event": "content-block-delta", "index": 0, "delta": ["text-delta"]},
        {"event": "content-block-delta", "index": 0, "delta": {"text": "no type"}},
        {"event": "content-block-delta", "index": 0, "delta": {"type": 3}},
        {"event": "content-block-delta", "index": 0},
        {"event": "content-block-start", "index": 0},
        {"event": "content-block-start", "index": 0, "content": None},
        {"event": "content-block-finish", "content": {"type": "text", "text": ""}},
        {"event": "content-block-finish", "index": -2, "content": {"type": "text", "text": ""}},
        {"event": "message-start", "id": 42},
        {"event": "message-start", "metadata": "fake"},
        {"event": "message-finish", "usage": [1]},
        {"event": "message-finish", "metadata": "m"},
        {"event": "error"},
        {"event": "error", "message": None},
        {"event": "error", "message": 5},
        {"event": "error", "message": "x", "code": 5},
    ],
)
def test_invalid_shape(event: Any) -> None:
    error = decode_error(raw(event))
    assert error.reason == "invalid_shape"
    assert error.detail


def event_of_depth(depth: int) -> dict[str, Any]:
    """An event whose JSON nesting is exactly `depth` levels (the event object is level 1)."""
    value: Any = 1
    for level in range(depth - 2):
        value = [value] if level % 2 else {"k": value}
    return {"event": "message-finish", "metadata": {"v": value}} if depth > 1 else {"event": "x"}


def json_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((json_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((json_depth(v) for v in value), default=0)
    return 0


@pytest.mark.parametrize("max_depth", [2, 4, 9, 32])
def test_depth_exactly_at_the_limit_is_accepted_and_one_more_is_too_deep(max_depth: int) -> None:
    limits = EventLimits(max_json_depth=max_depth)
    at_limit = event_of_depth(max_depth)
    assert json_depth(at_limit) == max_depth
    assert decode_event(raw(at_limit), limits) == at_limit

    beyond = event_of_depth(max_depth + 1)
    assert json_depth(beyond) == max_depth + 1
    error = decode_error(raw(beyond), limits)
    assert error.reason == "too_deep"
    assert str(max_depth) in error.detail


def test_depth_counts_lists_and_objects() -> None:
    limits = EventLimits(max_json_depth=3)
    assert decode_event(raw({"event": "x", "a": [1, {}]}), limits) == {"event": "x", "a": [1, {}]}
    assert decode_error(raw({"event": "x", "a": [[[]]]}), limits).reason == "too_deep"
    assert decode_error(raw({"event": "x", "a": {"b": {"c": {}}}}), limits).reason == "too_deep"


def test_very_deep_json_is_too_deep_not_a_recursion_error() -> None:
    payload = b'{"event": "x", "v": ' + b"[" * 500 + b"]" * 500 + b"}"
    assert decode_error({EVENT_FIELD: payload}).reason == "too_deep"


@pytest.mark.parametrize(
    "event",
    [
        {"event": "tool-started", "tool_call_id": "call_1", "payload": {"a": [1, 2]}},
        {"event": "custom"},
        {"event": "message-start-v2", "delta": "not checked"},
        {"event": ""},
    ],
    ids=["tool-started", "custom", "message-start-v2", "empty"],
)
def test_unknown_event_kinds_decode_fine(event: dict[str, Any]) -> None:
    assert decode_event(raw(event), LIMITS) == event


@pytest.mark.parametrize(
    "event",
    [
        {"event": "tool-started", "index": "call-1"},
        {"event": "tool-started", "index": None},
        {"event": "custom", "index": {"k": 1}},
    ],
    ids=["str-index", "null-index", "object-index"],
)
def test_unknown_event_kinds_with_a_non_integer_index_decode_fine(event: dict[str, Any]) -> None:
    # The protocol says to ignore kinds it doesn't know, whatever their fields.
    assert decode_event(raw(event), LIMITS) == event


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)
kinds = st.sampled_from(
    [
        "message-start",
        "content-block-start",
        "content-block-delta",
        "content-block-finish",
        "message-finish",
        "error",
        "tool-started",
    ]
)
field_names = st.sampled_from(
    ["index", "delta", "content", "content_block", "message", "code", "id", "usage"]
)


@settings(max_examples=300, deadline=None)
@given(
    kind=kinds | json_values,
    fields=st.dictionaries(field_names | st.text(max_size=4), json_values, max_size=4),
)
def test_decode_raises_nothing_but_event_decode_error(kind: Any, fields: dict[str, Any]) -> None:
    event = {**fields, "event": kind}
    try:
        outcome: Any = decode_event(raw(event), LIMITS)
    except EventDecodeError as exc:
        outcome = exc.reason
    assert outcome == event or outcome in {"invalid_shape", "too_deep"}


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_event_decode_error(payload: bytes) -> None:
    try:
        outcome: Any = decode_event({EVENT_FIELD: payload}, LIMITS)
    except EventDecodeError as exc:
        outcome = exc.reason
    assert isinstance(outcome, dict) or outcome in {"invalid_json", "invalid_shape", "too_deep"}


def test_located_error_carries_key_and_entry_id() -> None:
    error = decode_error({EVENT_FIELD: b"{"})
    assert error.key == ""
    assert error.entry_id == ""
    assert str(error).startswith("invalid_json: ")

    located = error.located("lcstream:{0}:lc_run--42:events", "0-7")
    assert isinstance(located, EventDecodeError)
    assert located.reason == "invalid_json"
    assert located.detail == error.detail
    assert located.key == "lcstream:{0}:lc_run--42:events"
    assert located.entry_id == "0-7"
    assert str(located) == f"invalid_json at lcstream:{{0}}:lc_run--42:events 0-7: {error.detail}"
    assert located.severity is Severity.POISON
