"""Tests of streams/ordering.py: the order checks in front of `dispatch()`."""

from __future__ import annotations

from typing import Any

import pytest

from lcstream.streams.errors import EventDecodeError
from lcstream.streams.ordering import EventOrder, parse_entry_id

START: dict[str, Any] = {"event": "message-start", "role": "ai", "id": "lc_run--42"}
BLOCK_START: dict[str, Any] = {
    "event": "content-block-start",
    "index": 0,
    "content": {"type": "text", "text": ""},
}
DELTA: dict[str, Any] = {
    "event": "content-block-delta",
    "index": 0,
    "delta": {"type": "text-delta", "text": "hi"},
}
BLOCK_FINISH: dict[str, Any] = {
    "event": "content-block-finish",
    "index": 0,
    "content": {"type": "text", "text": "hi"},
}
FINISH: dict[str, Any] = {"event": "message-finish"}
ERROR: dict[str, Any] = {"event": "error", "message": "boom", "code": "model_error"}
UNKNOWN: dict[str, Any] = {"event": "tool-started", "tool_call_id": "call_1"}

NORMAL = [START, BLOCK_START, DELTA, DELTA, BLOCK_FINISH, FINISH]


def accept_all(order: EventOrder, events: list[dict[str, Any]], first: int = 1) -> None:
    for n, event in enumerate(events, start=first):
        order.check(f"0-{n}".encode(), event)


def rejection(order: EventOrder, entry_id: bytes | str, event: dict[str, Any]) -> EventDecodeError:
    count = order.count
    with pytest.raises(EventDecodeError) as caught:
        order.check(entry_id, event)
    assert order.count == count, "a rejected event must not be counted"
    return caught.value


@pytest.mark.parametrize(
    ("entry_id", "parsed"),
    [(b"0-5", (0, 5)), ("0-5", (0, 5)), (b"1700000000000-3", (1_700_000_000_000, 3))],
)
def test_parse_entry_id(entry_id: bytes | str, parsed: tuple[int, int]) -> None:
    assert parse_entry_id(entry_id) == parsed


def test_a_normal_message_is_accepted() -> None:
    order = EventOrder(max_events=100)
    accept_all(order, NORMAL)
    assert order.count == len(NORMAL)


def test_string_entry_ids_are_accepted() -> None:
    order = EventOrder(max_events=100)
    order.check("0-1", START)
    order.check("0-2", FINISH)
    assert order.count == 2


@pytest.mark.parametrize("entry_id", [b"0-2", b"0-3", b"0-1"])
def test_out_of_order_same_or_smaller_id(entry_id: bytes) -> None:
    order = EventOrder(max_events=100)
    accept_all(order, [START, BLOCK_START, DELTA])
    error = rejection(order, entry_id, DELTA)
    assert error.reason == "out_of_order"


def test_a_duplicate_of_the_last_entry_is_out_of_order() -> None:
    order = EventOrder(max_events=100)
    order.check(b"0-1", START)
    error = rejection(order, b"0-1", START)
    assert error.reason == "out_of_order"
    assert "0-1" in error.detail


def test_gap_in_explicit_ids() -> None:
    order = EventOrder(max_events=100)
    order.check(b"0-1", START)
    error = rejection(order, b"0-3", BLOCK_START)
    assert error.reason == "gap"
    assert "0-2" in error.detail
    # the missing entry, once it shows up, is accepted
    order.check(b"0-2", BLOCK_START)
    order.check(b"0-3", DELTA)
    assert order.count == 3


def test_a_message_that_does_not_begin_at_0_1_has_a_gap() -> None:
    order = EventOrder(max_events=100)
    assert rejection(order, b"0-2", START).reason == "gap"


@pytest.mark.parametrize("terminal", [FINISH, ERROR], ids=["message-finish", "error"])
@pytest.mark.parametrize("after", [DELTA, FINISH, ERROR, UNKNOWN, START], ids=lambda e: str(e["event"]))
def test_nothing_after_a_terminal_event(terminal: dict[str, Any], after: dict[str, Any]) -> None:
    order = EventOrder(max_events=100)
    accept_all(order, [START, BLOCK_START, DELTA, terminal])
    error = rejection(order, b"0-5", after)
    assert error.reason == "after_terminal"


def test_too_many_events() -> None:
    order = EventOrder(max_events=3)
    accept_all(order, [START, BLOCK_START, DELTA])
    error = rejection(order, b"0-4", DELTA)
    assert error.reason == "too_many_events"
    assert "3" in error.detail


def test_the_last_allowed_event_may_be_the_terminal_one() -> None:
    order = EventOrder(max_events=2)
    accept_all(order, [START, FINISH])
    assert order.count == 2


def test_duplicate_start() -> None:
    order = EventOrder(max_events=100)
    accept_all(order, [START, BLOCK_START])
    assert rejection(order, b"0-3", START).reason == "duplicate_start"


@pytest.mark.parametrize("event", [BLOCK_START, DELTA, BLOCK_FINISH, FINISH], ids=lambda e: str(e["event"]))
def test_content_before_start(event: dict[str, Any]) -> None:
    order = EventOrder(max_events=100)
    error = rejection(order, b"0-1", event)
    assert error.reason == "missing_start"
    assert str(event["event"]) in error.detail


def test_an_error_before_any_start_is_accepted_and_ends_the_message() -> None:
    order = EventOrder(max_events=100)
    order.check(b"0-1", ERROR)
    assert order.count == 1
    assert rejection(order, b"0-2", START).reason == "after_terminal"


def test_unknown_kinds_before_start_are_accepted() -> None:
    order = EventOrder(max_events=100)
    accept_all(order, [UNKNOWN, UNKNOWN, START, UNKNOWN, BLOCK_START, DELTA, BLOCK_FINISH, FINISH])
    assert order.count == 8


def test_increasing_auto_ids_are_accepted() -> None:
    order = EventOrder(max_events=100)
    ids = [b"1700000000000-0", b"1700000000000-1", b"1700000000005-0", b"1700000000005-7", b"1700000000100-0"]
    for entry_id, event in zip(ids, [START, BLOCK_START, DELTA, BLOCK_FINISH, FINISH], strict=True):
        order.check(entry_id, event)
    assert order.count == 5


@pytest.mark.parametrize("entry_id", [b"1700000000000-1", b"1699999999999-9", b"1700000000000-0"])
def test_auto_ids_must_increase(entry_id: bytes) -> None:
    order = EventOrder(max_events=100)
    order.check(b"1700000000000-0", START)
    order.check(b"1700000000000-1", BLOCK_START)
    assert rejection(order, entry_id, DELTA).reason == "out_of_order"


def test_explicit_then_auto_ids() -> None:
    order = EventOrder(max_events=100)
    order.check(b"0-1", START)
    order.check(b"1700000000000-0", BLOCK_START)
    assert rejection(order, b"0-2", DELTA).reason == "out_of_order"
    order.check(b"1700000000000-1", DELTA)
    assert order.count == 3
