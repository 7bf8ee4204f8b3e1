"""How a round's writes are split into script calls."""

from __future__ import annotations

from typing import Any, cast

from streams.frames import Frame, FrameKind
from worker.handler import MessageHandler
from worker.publisher import FRAMES_PER_CALL, _chunks


def frames(n: int) -> list[Frame]:
    return [Frame(seq, FrameKind.TEXT, "t") for seq in range(1, n + 1)]


def test_calls_hold_whole_messages_up_to_the_frame_limit() -> None:
    handlers = [cast(MessageHandler, object()) for _ in range(5)]
    sizes = [FRAMES_PER_CALL // 2, FRAMES_PER_CALL // 2, 1, FRAMES_PER_CALL + 5, 3]
    batch = [(handler, frames(n)) for handler, n in zip(handlers, sizes, strict=True)]
    chunks = _chunks(batch)
    assert [[len(f) for _, f in chunk] for chunk in chunks] == [
        [FRAMES_PER_CALL // 2, FRAMES_PER_CALL // 2],
        [1],
        [FRAMES_PER_CALL + 5],  # one message is never split, even past the limit
        [3],
    ]
    flattened: list[Any] = [item for chunk in chunks for item in chunk]
    assert flattened == batch
