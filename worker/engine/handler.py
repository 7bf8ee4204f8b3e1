"""One open message inside a worker: its entries checked, dispatched and turned into frames.

Frames wait in the handler's outbox until the round takes them into a batch
(`take_write`), frozen together with the ending when the message ended. Only
the round calls into a handler; the write in flight sees nothing but its batch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from lcstream.streams.errors import EventDecodeError
from lcstream.streams.events import TERMINAL_EVENTS, EventLimits, decode_time_ms, now_ms
from lcstream.streams.frames import Frame, MessageAssembler, Outcome
from lcstream.streams.keys import MessageKeys
from lcstream.streams.ordering import EventOrder, check_entries
from lcstream.worker.engine.announcement import Announcement
from lcstream.worker.engine.batch import DeadLetter, Ending, MessageWrite

Entry = tuple[bytes, Mapping[bytes, bytes]]

# Why a worker fails a message for a reason its events don't hold (its producer, its keys, its dispatch
# entry, its deliveries): rebuilding the message from its events can't reproduce these outcomes.
GIVEN_UP_REASONS = frozenset(
    {"idle_timeout", "max_open_time", "max_deliveries", "wrong_type", "invalid_dispatch"}
)


class MessageHandler:
    """Feeds the entries of `E(M)` into the message's stream, in order, and remembers where it is.

    Bad input never reaches `dispatch()`: a read's entries are all checked
    first, and the first that fails ends the message failed with the error's
    reason as code, after the frames of the events before it. An event after
    the terminal one fails the message `after_terminal` in place of that end.
    """

    __slots__ = (
        "_assembler",
        "_dead",
        "_ending_taken",
        "_kept_seq",
        "_last_fields",
        "_limits",
        "_order",
        "_outbox",
        "_read_at",
        "_read_wall_ms",
        "_run_id",
        "_terminal_id",
        "_wrong_type",
        "announced_at",
        "behind",
        "caught_up_at",
        "cursor",
        "deliveries",
        "delivery_id",
        "events_key",
        "keys",
    )

    def __init__(
        self,
        announcement: Announcement,
        delivery_id: bytes,
        *,
        deliveries: int,
        limits: EventLimits,
        max_events: int,
    ) -> None:
        self.keys: MessageKeys = announcement.keys
        self._run_id = announcement.run_id
        self.events_key = self.keys.events.encode()  # as XREAD replies name it
        self.delivery_id = delivery_id
        self.deliveries = deliveries
        self.cursor: bytes = b"0-0"
        self.behind = False  # the last read filled its share: more events wait, the clock is not idle
        self.announced_at = announced_at(delivery_id)
        self.caught_up_at: float | None = None  # when a read first left no event of it waiting
        self._read_at = time.monotonic()  # when the last entries were read ...
        self._read_wall_ms = now_ms()
        self._last_fields: Mapping[bytes, bytes] = {}  # ... and the newest one's fields (its `t`)
        self._limits = limits
        self._order = EventOrder(max_events)
        self._assembler = MessageAssembler(
            self.keys.message_id, namespace=announcement.namespace, node=announcement.node,
            run_id=announcement.run_id,
        )  # fmt: skip
        self._outbox: list[Frame] = []
        self._dead: DeadLetter | None = None
        self._terminal_id: bytes | None = None
        self._kept_seq = 0
        self._wrong_type = False
        self._ending_taken = False
        if announcement.problem is not None:
            self.give_up(announcement.problem.reason, announcement.problem.error)

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

    def accept(self, entries: Sequence[Entry]) -> bool:
        """Check, then dispatch the next entries; return whether they made frames."""
        checked, failure = check_entries(entries, self._limits, self._order, self.keys.events)
        if entries:
            self.cursor = entries[-1][0]
        assembler, outbox = self._assembler, self._outbox
        made = len(outbox)
        last = checked[-1][1] if checked else None
        ends = last is not None and last["event"] in TERMINAL_EVENTS  # only the last can be terminal
        for entry_id, event in checked:
            if ends and event is last:
                self._kept_seq, self._terminal_id = assembler.last_seq, entry_id
            try:
                outbox += assembler.feed(event)
            except Exception as exc:  # langchain-core rejected an event the checks let through
                error = EventDecodeError("dispatch_failed", f"{type(exc).__name__}: {exc}")
                failure, self._terminal_id = error.located(self.keys.events, entry_id.decode()), None
                break
        if failure is not None:
            self._fail(failure.reason, str(failure))
        if entries:
            self._read_at, self._read_wall_ms, self._last_fields = time.monotonic(), now_ms(), entries[-1][1]
        return len(outbox) > made

    @property
    def last_event_at(self) -> float:
        """Monotonic time the newest event was produced: its `t`, clamped to when it was read (a
        producer clock running ahead must not keep a message open), else when it was read.

        Worked out when asked (upkeep, metrics), not per read: it is off the hot path."""
        produced_ms = decode_time_ms(self._last_fields)
        if produced_ms is None or produced_ms > self._read_wall_ms:
            return self._read_at
        return self._read_at - (self._read_wall_ms - produced_ms) / 1000

    def give_up(self, reason: str, error: str, *, after_seq: int = -1, wrong_type: bool = False) -> None:
        """End the message failed and dead-lettered for a reason outside its events.

        `after_seq` is the last frame already in `O(M)` when this worker has not
        rebuilt the message (it gives up without replaying it); `wrong_type` says
        one of its keys has another type, so only keys of the right type are written.
        """
        if after_seq >= 0:
            self._assembler.continue_after(after_seq)
        self._wrong_type = wrong_type
        self._fail(reason, error)

    def give_up_wrong_type(self, key: str, kind: str) -> None:
        """End the message failed: `key`, one of its streams, holds a key of type `kind` instead."""
        self.give_up("wrong_type", f"{key} holds a {kind}, not a stream", wrong_type=True)

    def _fail(self, reason: str, error: str) -> None:
        self._kept_seq = self._assembler.last_seq
        self._dead = DeadLetter(reason, error)
        self._outbox.append(self._assembler.fail(error, reason))

    def take_write(self) -> MessageWrite[MessageHandler] | None:
        """The frames made since the last write (and the ending, once made), frozen for a batch."""
        ending: Ending | None = None
        if (outcome := self.outcome) is not None and not self._ending_taken:
            self._ending_taken = True
            ending = Ending(
                outcome, self._dead, self.deliveries, self._terminal_id, self._kept_seq, self._wrong_type
            )
        if not self._outbox and ending is None:
            return None
        frames, self._outbox = tuple(self._outbox), []
        return MessageWrite(self, self.keys, self.delivery_id, frames, ending, self._run_id)

    @property
    def ending_in_flight(self) -> bool:
        """Whether the ending was taken for a write not settled yet (that write acks the entry)."""
        return self._ending_taken

    def requeue(self, write: MessageWrite[MessageHandler]) -> None:
        """Put a refused write back in front of anything made since, to be written again."""
        self._outbox[:0] = write.frames
        if write.ending is not None:
            self._ending_taken = False

    def end_instead(
        self, write: MessageWrite[MessageHandler], reason: str, error: str, *, wrong_type: bool
    ) -> None:
        """End failed in place of what `write` carried and anything made since: the fenced script
        refused it for the message's own reason (events after its end, a key of the wrong type)."""
        kept_seq = write.ending.kept_seq if write.ending is not None else write.frames[-1].seq
        kept = [frame for frame in write.frames if frame.seq <= kept_seq]
        self._dead = DeadLetter(reason, error)
        self._terminal_id, self._kept_seq, self._wrong_type = None, kept_seq, wrong_type
        self._outbox = [*kept, self._assembler.fail_after(kept_seq, error, reason)]
        self._ending_taken = False


def announced_at(delivery_id: bytes) -> float:
    """Monotonic time of the announcement: its dispatch entry id is Redis's clock when it was added
    (an id that can't be a past time counts as now)."""
    announced_ms = int(delivery_id.partition(b"-")[0] or 0)
    wall_ms, now = now_ms(), time.monotonic()
    return now - (wall_ms - announced_ms) / 1000 if 0 < announced_ms <= wall_ms else now
