"""What one partition holds: open messages, claims waiting for their first event, and what to write."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lcstream.worker.engine.announcement import Announcement
from lcstream.worker.engine.handler import MessageHandler
from lcstream.worker.engine.leases import Claimed


@dataclass(frozen=True, slots=True)
class WaitingClaim:
    """A claimed message whose `E(M)` does not exist yet: it costs no open slot and no read until it does."""

    claim: Claimed
    announcement: Announcement
    announced_at: float  # monotonic


class Held:
    """Open messages by events key, waiting claims by events key, and the handlers with frames to write.

    `on_freed` is called whenever an open message is let go, so partitions
    waiting for room can go on.
    """

    def __init__(self, on_freed: Callable[[], None]) -> None:
        self.open: dict[bytes, MessageHandler] = {}
        self.waiting: dict[bytes, WaitingClaim] = {}
        self.dirty: dict[MessageHandler, None] = {}  # insertion-ordered set
        self.started: list[bytes] = []  # `started` notices to publish with the next write
        self._on_freed = on_freed

    def __bool__(self) -> bool:
        return bool(self.open or self.waiting)

    def add(self, handler: MessageHandler) -> None:
        """Hold an open message (its frames, if it made some at opening, go with the next write)."""
        self.open[handler.events_key] = handler
        self.mark(handler)

    def mark(self, handler: MessageHandler) -> None:
        """`handler` has something to write."""
        self.dirty[handler] = None

    def holds(self, handler: MessageHandler) -> bool:
        """Whether `handler` is still the one held for its message."""
        return self.open.get(handler.events_key) is handler

    def delivery_of(self, events_key: bytes) -> bytes | None:
        """The dispatch entry id under which a message is held (open or waiting), if it is."""
        if (handler := self.open.get(events_key)) is not None:
            return handler.delivery_id
        if (waiting := self.waiting.get(events_key)) is not None:
            return waiting.claim.entry_id
        return None

    def forget(self, handler: MessageHandler) -> bool:
        """Let go of `handler`; False when it was no longer held."""
        if not self.holds(handler):
            return False
        del self.open[handler.events_key]
        self.dirty.pop(handler, None)
        self._on_freed()
        return True

    def leases(self, *, renewing: bool = False) -> list[tuple[bytes, int]]:
        """(dispatch entry id, deliveries) of everything held, for hand-back; with `renewing`, not of
        messages whose ending is being written: that write acks the entry, and a renewal racing it
        would find the entry gone and take the message for lost."""
        held = [
            (handler.delivery_id, handler.deliveries)
            for handler in self.open.values()
            if not (renewing and handler.ending_in_flight)
        ]
        return held + [(w.claim.entry_id, w.claim.deliveries) for w in self.waiting.values()]

    def forget_entries(self, entry_ids: set[bytes]) -> list[str]:
        """Let go of whatever is held under these dispatch entry ids; return their message ids."""
        gone = [h for h in self.open.values() if h.delivery_id in entry_ids]
        for handler in gone:
            self.forget(handler)
        waiting = [key for key, w in self.waiting.items() if w.claim.entry_id in entry_ids]
        names = [handler.message_id for handler in gone]
        return names + [self.waiting.pop(key).announcement.keys.message_id for key in waiting]

    def clear(self) -> None:
        """Forget everything (their pending entries bring them back)."""
        self.open.clear()
        self.waiting.clear()
        self.dirty.clear()
        self.started.clear()
        self._on_freed()
