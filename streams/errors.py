"""One error root, each error known as transient, poison or fatal."""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    """What the worker does about an error."""

    TRANSIENT = "transient"  # retry with back-off
    POISON = "poison"  # fail the message, dead-letter it, ack
    FATAL = "fatal"  # stop the process with a named exit code


class LcstreamError(Exception):
    """Root of every error lcstream raises on purpose."""

    severity: Severity = Severity.FATAL


class InvalidMessageIdError(LcstreamError, ValueError):
    """A message id outside the protocol's alphabet or length (docs/protocol.md)."""

    severity = Severity.POISON


class EventDecodeError(LcstreamError):
    """An event entry that cannot reach the stream: unreadable, malformed, too big, out of order.

    `reason` is a stable code (`invalid_json`, `too_large`, ...) that ends up in
    the failed outcome and the dead letter.
    """

    severity = Severity.POISON

    def __init__(self, reason: str, detail: str, *, key: str = "", entry_id: str = "") -> None:
        self.reason = reason
        self.detail = detail
        self.key = key
        self.entry_id = entry_id
        where = f" at {key} {entry_id}" if key else ""
        super().__init__(f"{reason}{where}: {detail}")

    def located(self, key: str, entry_id: str) -> EventDecodeError:
        """Return the same error carrying the stream key and entry id it came from."""
        return EventDecodeError(self.reason, self.detail, key=key, entry_id=entry_id)


class MessageIdInUseError(LcstreamError, ValueError):
    """The message id is taken: a job, other events or an outcome use it already."""

    severity = Severity.POISON


class MessageNotFoundError(LcstreamError):
    """Nothing of the message (events, frames, outcome) appeared in Redis within the wait."""

    severity = Severity.POISON


class PartitionCountError(LcstreamError):
    """This process is configured for another number of partitions than the workers of its prefix."""


class RedisUnavailableError(LcstreamError):
    """Redis could not be reached or answered with a connection-level failure."""

    severity = Severity.TRANSIENT


class SlotMovedError(RedisUnavailableError):
    """A cluster slot is served by another node now (or not at all for a moment): retry after
    reading the slot map again."""


class MessageFailedError(LcstreamError):
    """A message ended failed; raised by clients awaiting its result."""

    severity = Severity.POISON

    def __init__(self, message_id: str, message: str, code: str) -> None:
        self.message_id = message_id
        self.code = code
        self.error_message = message
        super().__init__(f"message {message_id} failed ({code}): {message}")


class TokenError(LcstreamError, ValueError):
    """A read token that can't be minted or used: no key configured, malformed, tampered with, expired,
    or signed by an unknown key."""


class RunFailedError(LcstreamError):
    """A run ended failed or interrupted; raised by `attach_run` after the messages that ran."""

    def __init__(self, run_id: str, status: str, message: str, code: str) -> None:
        self.run_id = run_id
        self.status = status
        self.code = code
        self.error_message = message
        super().__init__(f"run {run_id} {status} ({code}): {message}")
