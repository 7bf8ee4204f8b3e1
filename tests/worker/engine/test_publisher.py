"""How a round's writes are split into script calls."""

from __future__ import annotations

from lcstream.streams.frames import Frame, FrameKind
from lcstream.streams.keys import Keyspace
from lcstream.worker.engine.batch import MessageWrite
from lcstream.worker.engine.publisher import FRAMES_PER_CALL, _chunks


def write(n: int) -> MessageWrite[object]:
    frames = tuple(Frame(seq, FrameKind.TEXT, "t") for seq in range(1, n + 1))
    keys = Keyspace().message(f"m-{n}")
    return MessageWrite(object(), keys, b"1-1", frames, None)


def test_calls_hold_whole_messages_up_to_the_frame_limit() -> None:
    sizes = [FRAMES_PER_CALL // 2, FRAMES_PER_CALL // 2, 1, FRAMES_PER_CALL + 5, 3]
    writes = [write(n) for n in sizes]
    chunks = _chunks(writes)
    assert [[len(w.frames) for w in chunk] for chunk in chunks] == [
        [FRAMES_PER_CALL // 2, FRAMES_PER_CALL // 2],
        [1],
        [FRAMES_PER_CALL + 5],  # one message is never split, even past the limit
        [3],
    ]
    assert [w for chunk in chunks for w in chunk] == writes
