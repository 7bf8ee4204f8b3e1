"""What one round hands to the write, frozen, and what the write hands back.

A round takes a `Batch` from the messages it moved on: their new frames and,
for messages that ended, the outcome and dead letter as they were at that
moment. The write task reads nothing else, so the next round may go on
reading the same messages while the write is in flight. The write returns
one `Verdict` per message; only the round applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Generic, TypeVar

import orjson

from lcstream.streams.frames import Frame, Outcome
from lcstream.streams.keys import MessageKeys

H = TypeVar("H")  # what made the write: the round applies the verdict to it


def lifecycle_notice(message_id: str, status: str, run_id: str | None = None) -> bytes:
    """A lifecycle notice on `P:messages`; a message of a run names it (v1.1)."""
    notice: dict[str, str] = {"message_id": message_id, "status": status}
    if run_id is not None:
        notice["run_id"] = run_id
    return orjson.dumps(notice)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Why a message ended in `P:dead`: a reason code and a readable error."""

    reason: str
    error: str


@dataclass(frozen=True, slots=True)
class Ending:
    """How a message ends, as the fenced script commits it."""

    outcome: Outcome
    dead: DeadLetter | None
    deliveries: int
    # The entry id of the terminal event that ended it (else None): the script commits only if it is
    # still the last entry of E(M), since events after the end are rejected, never dropped.
    terminal_id: bytes | None
    # Frames up to this seq came before the ending; a refused ending keeps them and ends failed after.
    kept_seq: int
    # Ended for a key of the wrong type: the script writes only to the keys that have the right one.
    wrong_type: bool = False


@dataclass(frozen=True, slots=True)
class MessageWrite(Generic[H]):
    """One message's part of a batch."""

    handler: H  # only the round touches it, to apply the verdict
    keys: MessageKeys
    delivery_id: bytes
    frames: tuple[Frame, ...]
    ending: Ending | None
    run_id: str | None = None  # v1.1: named in its ending's notice


@dataclass(frozen=True, slots=True)
class Batch(Generic[H]):
    """What one round produced: messages' writes, and the messages whose `started` notice is due."""

    writes: tuple[MessageWrite[H], ...]
    started: tuple[bytes, ...]  # their notices, encoded
    produced_at: float | None = None  # monotonic producer time of the oldest newest-event among the writes
    # The same over messages whose newest event came after the worker caught up with them.
    own_from: float | None = None


class Verdict(IntEnum):
    """What the fenced script did with one message's write."""

    LOST = 0  # another consumer owns the message now: nothing was written
    WRITTEN = 1
    ALREADY_COMMITTED = 2  # an earlier delivery wrote the outcome: only acked
    REFUSED = 3  # Redis refused a write (OOM, read-only replica): nothing counts, retry later
    WRONG_TYPE = 4  # O(M) or R(M) holds a key of another type: the message must fail `wrong_type`
    AFTER_TERMINAL = 5  # E(M) holds events after the one that ended it: it must fail `after_terminal`


@dataclass(frozen=True, slots=True)
class WriteVerdict:
    """A verdict, with Redis's error text when a write was refused or met a wrong type."""

    verdict: Verdict
    detail: str = ""
