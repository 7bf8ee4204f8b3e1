"""The langchain-core internals lcstream reads are still there in the installed release."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from langchain_core.language_models.chat_model_stream import AsyncChatModelStream

from lcstream.streams import langchain_internals
from lcstream.streams.langchain_internals import LangchainInternalsError, drop_replay_buffers, take_deltas


def test_the_installed_langchain_core_has_what_lcstream_reads() -> None:
    langchain_internals.check()  # raises naming the version if a release moved them


def test_deltas_are_taken_once_in_order_and_replay_buffers_dropped() -> None:
    stream = AsyncChatModelStream(message_id="m")
    stream.dispatch({"event": "message-start", "id": "m"})
    stream.dispatch({"event": "content-block-start", "index": 0, "content": {"type": "text", "text": ""}})
    for piece in ("a", "b"):
        stream.dispatch(
            {"event": "content-block-delta", "index": 0, "delta": {"type": "text-delta", "text": piece}}
        )
    assert take_deltas(stream.text) == ["a", "b"]
    assert take_deltas(stream.text) == []
    drop_replay_buffers(stream)
    assert not stream.has_events


def test_a_release_without_them_is_named_in_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def moved(projection: object) -> list[object]:
        raise AttributeError("'AsyncProjection' object has no attribute '_deltas'")

    monkeypatch.setattr(langchain_internals, "take_deltas", moved)
    with pytest.raises(LangchainInternalsError, match=f"langchain-core {version('langchain-core')} changed"):
        langchain_internals.check()
