"""The pure core: protocol events in, output frames and the outcome out.

Drives langchain-core's own `AsyncChatModelStream.dispatch()`; assembly is
never re-implemented here. No Redis import, so the conformance fixtures test
this module directly. Frames are a pure function of the events: a worker
that rebuilds a message from its first event produces the same frames with
the same seqs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import orjson
from langchain_core.language_models.chat_model_stream import (
    AsyncChatModelStream,
    AsyncProjection,
)
from langchain_core.messages import message_to_dict

from lcstream.streams.events import Event
from lcstream.streams.langchain_internals import drop_replay_buffers, take_deltas


class FrameKind(StrEnum):
    """What an output frame carries."""

    START = "start"
    TEXT = "text"
    REASONING = "reasoning"
    TOOL_CALL_CHUNK = "tool_call_chunk"
    OUTPUT = "output"
    ERROR = "error"


TERMINAL_KINDS = frozenset({FrameKind.OUTPUT, FrameKind.ERROR})


class Frame(NamedTuple):
    """Output frame number `seq` (1, 2, ...) of a message (a tuple: one is made per token)."""

    seq: int
    kind: FrameKind
    data: Any

    def body_json(self) -> bytes:
        """The `O(M)` entry field `f`: the frame without its seq (the entry id carries it)."""
        return orjson.dumps({"kind": self.kind, "data": self.data})

    def live_json(self) -> bytes:
        """The `L(M)` message: the frame with its seq."""
        return orjson.dumps({"seq": self.seq, "kind": self.kind, "data": self.data})

    @classmethod
    def from_body(cls, seq: int, body: bytes) -> Frame:
        """Rebuild a frame from an `O(M)` entry."""
        parsed = orjson.loads(body)
        return cls(seq=seq, kind=FrameKind(parsed["kind"]), data=parsed["data"])

    @classmethod
    def from_live(cls, payload: bytes) -> Frame:
        """Rebuild a frame from an `L(M)` message."""
        parsed = orjson.loads(payload)
        return cls(seq=parsed["seq"], kind=FrameKind(parsed["kind"]), data=parsed["data"])


@dataclass(frozen=True, slots=True)
class Outcome:
    """The terminal outcome of a message, as stored in `R(M)`."""

    status: str  # "completed" or "failed"
    message: dict[str, Any] | None = None
    error: dict[str, str] | None = None

    @classmethod
    def completed(cls, message: dict[str, Any]) -> Outcome:
        """A completed outcome carrying `message_to_dict(AIMessage)`."""
        return cls(status="completed", message=message)

    @classmethod
    def failed(cls, message: str, code: str) -> Outcome:
        """A failed outcome with a reason code."""
        return cls(status="failed", error={"message": message, "code": code})

    def to_json(self) -> bytes:
        """The `R(M)` value."""
        if self.status == "completed":
            return orjson.dumps({"status": self.status, "message": self.message})
        return orjson.dumps({"status": self.status, "error": self.error})

    @classmethod
    def from_json(cls, raw: bytes | str) -> Outcome:
        """Parse an `R(M)` value."""
        parsed = orjson.loads(raw)
        return cls(status=parsed["status"], message=parsed.get("message"), error=parsed.get("error"))


class _Cursor:
    """Takes what one projection yielded since the last look."""

    __slots__ = ("_kind", "_projection")

    def __init__(self, kind: FrameKind, projection: AsyncProjection) -> None:
        self._kind = kind
        self._projection = projection

    def take(self) -> list[Any]:
        return take_deltas(self._projection)


class MessageAssembler:
    """One message's `AsyncChatModelStream`, fed event by event, read as frames.

    The frames are the record: the stream keeps what assembly needs and its
    output, but not its replay buffer or the deltas already taken as frames.
    """

    __slots__ = ("_cursors", "_namespace", "_node", "_outcome", "_run_id", "_seq", "message_id", "stream")

    def __init__(
        self,
        message_id: str,
        *,
        namespace: list[str] | None = None,
        node: str | None = None,
        run_id: str | None = None,
    ) -> None:
        self.message_id = message_id
        self._namespace = namespace or []
        self._node = node
        self._run_id = run_id
        self.stream = AsyncChatModelStream(namespace=namespace, node=node, message_id=message_id)
        self._cursors = (
            _Cursor(FrameKind.TEXT, self.stream.text),
            _Cursor(FrameKind.REASONING, self.stream.reasoning),
            _Cursor(FrameKind.TOOL_CALL_CHUNK, self.stream.tool_calls),
        )
        self._seq = 0
        self._outcome: Outcome | None = None

    @property
    def outcome(self) -> Outcome | None:
        """The outcome once the message ended, else None."""
        return self._outcome

    @property
    def last_seq(self) -> int:
        """Seq of the last frame made."""
        return self._seq

    def feed(self, event: Event) -> list[Frame]:
        """Dispatch one checked event; return the frames it produced, in order."""
        if self._outcome is not None:
            raise RuntimeError(f"message {self.message_id} already ended")
        stream = self.stream
        stream.dispatch(event)
        drop_replay_buffers(stream)
        frames: list[Frame] = []
        kind = event["event"]
        if kind == "message-start":
            frames.append(self._frame(FrameKind.START, self._start_data(event)))
        for cursor in self._cursors:
            for delta in cursor.take():
                frames.append(self._frame(cursor._kind, delta))
        if kind == "message-finish":
            message = stream.output_message
            assert message is not None  # dispatch() assembles it on message-finish
            data = message_to_dict(message)
            self._outcome = Outcome.completed(data)
            frames.append(self._frame(FrameKind.OUTPUT, data))
        elif kind == "error":
            frames.append(self.fail(event["message"], event.get("code") or "model_error"))
        return frames

    def feed_all(self, events: Iterable[Event]) -> list[Frame]:
        """Feed events until the message ends; return every frame."""
        frames: list[Frame] = []
        for event in events:
            frames.extend(self.feed(event))
            if self._outcome is not None:
                break
        return frames

    def fail(self, message: str, code: str) -> Frame:
        """End the message failed (model error, poison, timeout); return its `error` frame."""
        if self._outcome is not None:
            raise RuntimeError(f"message {self.message_id} already ended")
        if not self.stream.done:
            self.stream.fail(RuntimeError(message))
        self._outcome = Outcome.failed(message, code)
        return self._frame(FrameKind.ERROR, {"message": message, "code": code})

    def fail_after(self, seq: int, message: str, code: str) -> Frame:
        """End failed with an `error` frame numbered `seq + 1`, in place of any ending made after frame
        `seq` (a commit refused because the message's own keys or events forbid it)."""
        self._seq = seq
        self._outcome = None
        return self.fail(message, code)

    def continue_after(self, seq: int) -> None:
        """Number the next frame `seq + 1`: frames up to `seq` exist already (a worker giving up
        on a message it did not rebuild)."""
        if self._seq:
            raise RuntimeError(f"message {self.message_id} has made frames already")
        self._seq = seq

    def _frame(self, kind: FrameKind, data: Any) -> Frame:
        self._seq += 1
        return Frame(self._seq, kind, data)

    def _start_data(self, event: Event) -> dict[str, Any]:
        data = {
            "message_id": self.message_id,
            "namespace": self._namespace,
            "node": self._node,
            "metadata": event.get("metadata"),
        }
        if self._run_id is not None:  # v1.1; a message of no run keeps v1's start frame
            data["run_id"] = self._run_id
        return data
