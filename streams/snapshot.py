"""The message assembled so far, folded from its frames: what a late joiner shows before live deltas."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lcstream.streams.cluster import RedisClient
from lcstream.streams.frames import Frame, FrameKind
from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import read_frames


@dataclass
class Snapshot:
    """Text, reasoning and tool calls up to frame `seq`; `status` is streaming, completed or failed."""

    message_id: str
    seq: int = 0
    status: str = "waiting"
    text: str = ""
    reasoning: str = ""
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    error: dict[str, str] | None = None

    def apply(self, frame: Frame) -> None:
        """Fold in the next frame."""
        self.seq = frame.seq
        if frame.kind is FrameKind.START:
            self.status, self.metadata = "streaming", frame.data.get("metadata")
        elif frame.kind is FrameKind.TEXT:
            self.text += frame.data
        elif frame.kind is FrameKind.REASONING:
            self.reasoning += frame.data
        elif frame.kind is FrameKind.TOOL_CALL_CHUNK:
            call = self.tool_calls.setdefault(
                frame.data.get("index", 0), {"id": None, "name": None, "args": ""}
            )
            call["id"] = call["id"] or frame.data.get("id")
            call["name"] = call["name"] or frame.data.get("name")
            call["args"] += frame.data.get("args") or ""
        elif frame.kind is FrameKind.OUTPUT:
            self.status, self.output = "completed", frame.data
        elif frame.kind is FrameKind.ERROR:
            self.status, self.error = "failed", frame.data

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tool calls as a list in index order)."""
        return {
            "message_id": self.message_id,
            "seq": self.seq,
            "status": self.status,
            "text": self.text,
            "reasoning": self.reasoning,
            "tool_calls": [{"index": i, **c} for i, c in sorted(self.tool_calls.items())],
            "metadata": self.metadata,
            "output": self.output,
            "error": self.error,
        }


async def read_snapshot(redis: RedisClient, message_id: str, keyspace: Keyspace | None = None) -> Snapshot:
    """Fold every frame stored so far; follow with `subscribe(after=snapshot.seq)` for the rest."""
    snapshot = Snapshot(message_id)
    for frame in await read_frames(redis, message_id, keyspace):
        snapshot.apply(frame)
    return snapshot
