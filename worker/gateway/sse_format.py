"""The gateway's SSE wire format: each frame as `id: <seq>`, `event: frame`, `data: <live JSON>`."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from lcstream.streams.frames import TERMINAL_KINDS, Frame
from lcstream.streams.snapshot import Snapshot

# Sent first on every stream: how long a browser's EventSource waits before it reconnects.
RETRY_MS = 1000
PREAMBLE = f"retry: {RETRY_MS}\n\n".encode()


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """A frame encoded once as an SSE event; the same bytes go to every client of the message."""

    seq: int
    terminal: bool
    payload: bytes


def encode_frame(frame: Frame) -> EncodedFrame:
    """The SSE event of `frame`; its data is the `L(M)` JSON `{"seq", "kind", "data"}`."""
    payload = b"id: %d\nevent: frame\ndata: %s\n\n" % (frame.seq, frame.live_json())
    return EncodedFrame(frame.seq, frame.kind in TERMINAL_KINDS, payload)


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """The `snapshot` SSE event: `Snapshot.to_dict()`, its id the seq it was folded up to."""
    return b"id: %d\nevent: snapshot\ndata: %s\n\n" % (
        snapshot.seq,
        orjson.dumps(snapshot.to_dict(), option=orjson.OPT_NON_STR_KEYS),
    )
