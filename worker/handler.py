"""One open message inside a worker: its entries checked, dispatched and turned into frames."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from streams.errors import EventDecodeError
from streams.events import EventLimits, decode_event, decode_time_ms, now_ms
from streams.frames import Frame, MessageAssembler, Outcome
from streams.keys import MessageKeys
from streams.ordering import EventOrder

Entry = tuple[bytes, Mapping[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Why a message ended in `P:dead`: a reason code and a readable error."""

    reason: str
    error: str


class MessageHandler:
    """Feeds the entries of `E(M)` into the message's stream, in order, and remembers where it is.

    Bad input never reaches `dispatch()`: the first entry that fails its
    checks ends the message failed, with the error's reason as code.
    """

    __slots__ = (
        "_assembler",
        "_last_fields",
        "_limits",
        "_order",
        "_read_at",
        "behind",
        "cursor",
        "dead",
        "deliveries",
        "delivery_id",
        "keys",
    )

    def __init__(
        self,
        keys: MessageKeys,
        delivery_id: bytes,
        *,
        namespace: list[str] | None,
        node: str | None,
        limits: EventLimits,
        max_events: int,
    ) -> None:
        self.keys = keys
        self.delivery_id = delivery_id
        self.deliveries = 1
        self.cursor: bytes = b"0-0"
        self.behind = False  # the last read filled its count: more events wait, the clock is not idle
        self._read_at = time.monotonic()  # when the last entries were read ...
        self._last_fields: Mapping[bytes, bytes] = {}  # ... and the newest one's fields (its `t`)
        self.dead: DeadLetter | None = None  # why the message is dead-lettered, once it is
        self._limits = limits
        self._order = EventOrder(max_events)
        self._assembler = MessageAssembler(keys.message_id, namespace=namespace, node=node)

    @classmethod
    def from_dispatch(
        cls,
        keys: MessageKeys,
        delivery_id: bytes,
        fields: Mapping[bytes, bytes],
        *,
        limits: EventLimits,
        max_events: int,
    ) -> MessageHandler:
        """A handler for a dispatch entry (`m`, optional `ns` JSON list and `node`)."""
        namespace: Any = None
        if b"ns" in fields:
            try:
                namespace = orjson.loads(fields[b"ns"])
            except orjson.JSONDecodeError:
                namespace = None
        if not (isinstance(namespace, list) and all(isinstance(p, str) for p in namespace)):
            namespace = None
        node = fields[b"node"].decode(errors="replace") if b"node" in fields else None
        return cls(keys, delivery_id, namespace=namespace, node=node, limits=limits, max_events=max_events)

    @property
    def message_id(self) -> str:
        """M."""
        return self.keys.message_id

    @property
    def outcome(self) -> Outcome | None:
        """The outcome once the message ended."""
        return self._assembler.outcome

    @property
    def event_count(self) -> int:
        """Events dispatched so far."""
        return self._order.count

    def accept(self, entries: Sequence[Entry]) -> list[Frame]:
        """Dispatch the next entries; return the frames they made. Stops at the end of the message."""
        frames: list[Frame] = []
        assembler = self._assembler
        for entry_id, fields in entries:
            self.cursor = entry_id
            try:
                event = decode_event(fields, self._limits)
                self._order.check(entry_id, event)
                frames.extend(assembler.feed(event))
            except EventDecodeError as exc:
                return [*frames, self._poisoned(exc.located(self.keys.events, entry_id.decode()))]
            except Exception as exc:  # langchain-core rejected an event the checks let through
                error = EventDecodeError("dispatch_failed", f"{type(exc).__name__}: {exc}")
                return [*frames, self._poisoned(error.located(self.keys.events, entry_id.decode()))]
            if assembler.outcome is not None:
                break
        if entries:
            self._read_at, self._last_fields = time.monotonic(), entries[-1][1]
        return frames

    @property
    def last_event_at(self) -> float:
        """Monotonic time the newest event was produced (from its `t`; else when it was read).

        Worked out when asked (upkeep, metrics), not per read: it is off the hot path."""
        return _received_at(self._last_fields, self._read_at)

    def give_up(self, reason: str, error: str, *, after_seq: int = -1) -> Frame:
        """End the message failed and dead-lettered for a reason outside its events.

        `after_seq` is the last frame already in `O(M)` when this worker has not
        rebuilt the message (it gives up without replaying it).
        """
        if after_seq >= 0:
            self._assembler.continue_after(after_seq)
        self.dead = DeadLetter(reason, error)
        return self._assembler.fail(error, reason)

    def _poisoned(self, error: EventDecodeError) -> Frame:
        self.dead = DeadLetter(error.reason, str(error))
        return self._assembler.fail(str(error), error.reason)


def _received_at(fields: Mapping[bytes, bytes], read_at: float) -> float:
    """Monotonic time the producer wrote this event, from its `t` field when it has one (else
    `read_at`, when it was read).

    After a takeover the replayed events are old; their producer time, not the
    replay, says how long the producer has been silent.
    """
    produced_ms = decode_time_ms(fields)
    if produced_ms is None:
        return read_at
    now = time.monotonic()
    return now - max(0.0, (now_ms() - produced_ms) / 1000)
