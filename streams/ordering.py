"""Order checks in front of `dispatch()`: `AsyncChatModelStream` neither dedupes nor checks order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lcstream.streams.errors import EventDecodeError
from lcstream.streams.events import TERMINAL_EVENTS, Event, EventLimits, decode_event

# Kinds that only make sense inside a started message; unknown kinds are ignored.
_NEEDS_START = frozenset(
    {"content-block-start", "content-block-delta", "content-block-finish", "message-finish"}
)


def parse_entry_id(entry_id: bytes | str) -> tuple[int, int]:
    """`b"0-5"` -> `(0, 5)`."""
    ms, _, seq = entry_id.partition(b"-") if isinstance(entry_id, bytes) else entry_id.partition("-")
    return int(ms), int(seq)


class EventOrder:
    """Checks one message's events arrive as a protocol message can: start, blocks, one end.

    Entry ids must strictly increase; explicit ids `0-n` (the producer's
    convention) must not skip a number, since a skipped entry can never be
    written later.
    """

    __slots__ = ("_count", "_last_id", "_max_events", "_started", "_terminal")

    def __init__(self, max_events: int) -> None:
        self._max_events = max_events
        self._last_id = (0, 0)
        self._count = 0
        self._started = False
        self._terminal = False

    @property
    def count(self) -> int:
        """Events accepted so far."""
        return self._count

    def check(self, entry_id: bytes | str, event: Event) -> None:
        """Accept the next event or raise `EventDecodeError`."""
        current = parse_entry_id(entry_id)
        if current <= self._last_id:
            raise EventDecodeError(
                "out_of_order", f"entry id {current[0]}-{current[1]} is not after the previous one"
            )
        if current[0] == 0 and self._last_id[0] == 0 and current[1] != self._last_id[1] + 1:
            raise EventDecodeError("gap", f"entry 0-{self._last_id[1] + 1} is missing before 0-{current[1]}")
        if self._terminal:
            raise EventDecodeError("after_terminal", "event after message-finish or error")
        if self._count >= self._max_events:
            raise EventDecodeError("too_many_events", f"message exceeds {self._max_events} events")
        kind = event["event"]
        if kind == "message-start":
            if self._started:
                raise EventDecodeError("duplicate_start", "second message-start")
            self._started = True
        elif kind in _NEEDS_START and not self._started:
            raise EventDecodeError("missing_start", f"{kind} before message-start")
        self._terminal = kind in TERMINAL_EVENTS
        self._last_id = current
        self._count += 1


def check_entries(
    entries: Sequence[tuple[bytes, Mapping[bytes, bytes]]], limits: EventLimits, order: EventOrder, key: str
) -> tuple[list[tuple[bytes, Event]], EventDecodeError | None]:
    """Decode and check entries of the events stream `key` in order: the events that pass, and the first
    failure after them (located at `key` and its entry id), if any.

    An event after the terminal one fails the message in place of that end: the
    terminal event is not among those returned.
    """
    checked: list[tuple[bytes, Event]] = []
    for entry_id, fields in entries:
        try:
            event = decode_event(fields, limits)
            order.check(entry_id, event)
        except EventDecodeError as exc:
            if exc.reason == "after_terminal" and checked:
                checked.pop()
            return checked, exc.located(key, entry_id.decode())
        checked.append((entry_id, event))
    return checked, None
