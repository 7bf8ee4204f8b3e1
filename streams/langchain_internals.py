"""What lcstream needs from langchain-core that its public API lacks.

Two things of `AsyncChatModelStream`, and the marker class a callback handler
inherits to receive protocol events under plain `invoke`/`ainvoke`
(`V2StreamingOptIn`, which LangGraph's own v2 handler uses).

A worker feeds events with `dispatch()` (public) and must then see, at once and
without an event loop turn, which deltas each projection yielded; and it must
not keep the stream's replay buffers, or every open message holds each token
twice more. Both reach into private attributes: they are here and nowhere
else, and `check()` (run when a worker starts, and by the test suite) fails with
the langchain-core version named if a release changes them, instead of every
message being dead-lettered `dispatch_failed`.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from langchain_core.language_models.chat_model_stream import AsyncChatModelStream, AsyncProjection

from lcstream.streams.errors import LcstreamError

try:  # the opt-in into `on_stream_event` for invoke/ainvoke; astream_events(version="v3") needs none
    from langchain_core.tracers._streaming import _V2StreamingCallbackHandler as V2StreamingOptIn

    V2_OPT_IN_FOUND = True
except ImportError:  # pragma: no cover - a release moved it: handlers then see events under v3 streaming only

    class V2StreamingOptIn:  # type: ignore[no-redef]
        """Stand-in for langchain-core's marker, which this release does not have."""

    V2_OPT_IN_FOUND = False

__all__ = [
    "V2_OPT_IN_FOUND",
    "LangchainInternalsError",
    "V2StreamingOptIn",
    "check",
    "drop_replay_buffers",
    "take_deltas",
]

_NOTHING: list[Any] = []  # never appended to


class LangchainInternalsError(LcstreamError):
    """The installed langchain-core no longer has the internals lcstream reads."""


def take_deltas(projection: AsyncProjection) -> list[Any]:
    """The deltas `projection` yielded since the last call, in order; its buffer is emptied.

    The buffer records every delta exactly as `async for` over the projection
    sees it; taken deltas live on as frames.
    """
    deltas: list[Any] = projection._deltas
    if not deltas:
        return _NOTHING
    taken = deltas[:]
    deltas.clear()
    return taken


def drop_replay_buffers(stream: AsyncChatModelStream) -> None:
    """Empty the stream's record of raw events (nobody replays a worker's stream)."""
    stream._events.clear()
    stream._events_proj._deltas.clear()


def check() -> None:
    """Raise `LangchainInternalsError` unless the internals above behave as lcstream expects."""
    try:
        stream = AsyncChatModelStream(message_id="lcstream-check")
        stream.dispatch({"event": "message-start", "id": "lcstream-check"})
        stream.dispatch({"event": "content-block-start", "index": 0, "content": {"type": "text", "text": ""}})
        stream.dispatch(
            {"event": "content-block-delta", "index": 0, "delta": {"type": "text-delta", "text": "ok"}}
        )
        taken, again = take_deltas(stream.text), take_deltas(stream.text)
        drop_replay_buffers(stream)
        emptied = not stream._events and not stream._events_proj._deltas
    except (AttributeError, TypeError) as exc:
        raise _changed(f"{type(exc).__name__}: {exc}") from exc
    if taken != ["ok"] or again or not emptied:
        raise _changed(f"text deltas read {taken!r} then {again!r}, replay buffers emptied: {emptied}")


def _changed(detail: str) -> LangchainInternalsError:
    return LangchainInternalsError(
        f"langchain-core {version('langchain-core')} changed the AsyncChatModelStream internals "
        f"lcstream reads (lcstream/streams/langchain_internals.py): {detail}"
    )
