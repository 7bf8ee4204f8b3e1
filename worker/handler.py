"""One open message inside a worker: its entries checked, dispatched and turned into frames."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from streams.errors import EventDecodeError
from streams.events import EventLimits, decode_event
from streams.frames import Frame, MessageAssembler, Outcome
from streams.keys import MessageKeys
from streams.ordering import EventOrder

Entry = tuple[bytes, Mapping[bytes, bytes]]


class MessageHandler:
    """Feeds the entries of `E(M)` into the message's stream, in order, and remembers where it is.

    Bad input never reaches `dispatch()`: the first entry that fails its
    checks ends the message failed, with the error's reason as code.
    """

    __slots__ = (
        "_assembler",
        "_limits",
        "_order",
        "cursor",
        "deliveries",
        "delivery_id",
        "keys",
        "last_event_at",
        "poison",
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
        self.last_event_at = time.monotonic()
        self.poison: EventDecodeError | None = None
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
            self.last_event_at = time.monotonic()
        return frames

    def fail(self, message: str, code: str) -> Frame:
        """End the message failed for a reason outside its events (timeout, deliveries)."""
        return self._assembler.fail(message, code)

    def _poisoned(self, error: EventDecodeError) -> Frame:
        self.poison = error
        return self._assembler.fail(str(error), error.reason)
