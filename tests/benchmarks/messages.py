"""The protocol events of the benchmark messages.

Backlog and tool-call messages go through langchain-core's own `chunks_to_events`.
Plain text messages are also built directly (`text_message_events`), in the exact
shape `chunks_to_events` gives them (`check_text_builder` proves it), because the
paced generator writes them piece by piece and the big workloads need millions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models._compat_bridge import chunks_to_events
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

Event = dict[str, Any]


def usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    """A usage block: what the last chunk of a real model carries."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


def events_of_chunks(message_id: str, chunks: Sequence[AIMessageChunk]) -> list[Event]:
    """langchain-core's protocol events for `chunks`."""
    generations = iter([ChatGenerationChunk(message=chunk) for chunk in chunks])
    return [dict(event) for event in chunks_to_events(generations, message_id=message_id)]


def start_events(message_id: str) -> list[Event]:
    """`message-start` and the start of text block 0."""
    return [
        {"event": "message-start", "role": "ai", "id": message_id},
        {"event": "content-block-start", "index": 0, "content": {"type": "text", "text": ""}},
    ]


def text_delta(text: str) -> Event:
    """One text token of block 0."""
    return {"event": "content-block-delta", "index": 0, "delta": {"type": "text-delta", "text": text}}


def finish_events(full_text: str, usage_block: dict[str, int]) -> list[Event]:
    """The end of text block 0 (carrying the whole text) and `message-finish`."""
    return [
        {"event": "content-block-finish", "index": 0, "content": {"type": "text", "text": full_text}},
        {"event": "message-finish", "usage": usage_block},
    ]


def text_message_events(message_id: str, texts: Sequence[str], input_tokens: int = 10) -> list[Event]:
    """A text-only message of `texts` tokens, as `chunks_to_events` builds it."""
    body = [text_delta(text) for text in texts]
    return [
        *start_events(message_id),
        *body,
        *finish_events("".join(texts), usage(input_tokens, len(texts))),
    ]


def backlog_message(message_id: str, n: int, tokens: int) -> list[Event]:
    """The backlog acceptance test's message `n`: `tokens` text tokens, then usage."""
    chunks = [AIMessageChunk(content=f"m{n}t{i} ") for i in range(tokens)]
    chunks.append(AIMessageChunk(content="", usage_metadata=usage(n, tokens)))  # type: ignore[arg-type]
    return events_of_chunks(message_id, chunks)


def tool_call_message(message_id: str, n: int, *, tools: int = 3, piece_chars: int = 4) -> list[Event]:
    """Some text, then `tools` parallel tool calls whose argument pieces interleave, then a closing line.

    Arguments are JSON of about 150 characters each, streamed `piece_chars` at a time.
    """
    chunks = [AIMessageChunk(content=f"Let me look that up ({n}, part {i}). ") for i in range(10)]
    pieces: list[list[str]] = []
    for t in range(tools):
        args = json.dumps({"query": f"message {n} tool {t} " + "lorem ipsum " * 8, "page": t, "limit": 20})
        pieces.append([args[i : i + piece_chars] for i in range(0, len(args), piece_chars)])
    for t in range(tools):  # each call opens with its name and id
        chunks.append(
            AIMessageChunk(
                content="",
                tool_call_chunks=[{"name": f"tool_{t}", "args": "", "id": f"call_{n}_{t}", "index": t + 1}],
            )
        )
    for step in range(max(len(p) for p in pieces)):
        for t, tool_pieces in enumerate(pieces):
            if step < len(tool_pieces):
                chunks.append(
                    AIMessageChunk(
                        content="",
                        tool_call_chunks=[
                            {"name": None, "args": tool_pieces[step], "id": None, "index": t + 1}
                        ],
                    )
                )
    chunks += [AIMessageChunk(content=f"Calling {tools} tools. ") for _ in range(2)]
    chunks.append(AIMessageChunk(content="", usage_metadata=usage(n, len(chunks))))  # type: ignore[arg-type]
    return events_of_chunks(message_id, chunks)


def check_text_builder() -> None:
    """`text_message_events` gives what `chunks_to_events` gives for the same tokens (raises if not)."""
    texts = ["Hello ", "wor", "ld ", "1700000000000000 "]
    chunks = [AIMessageChunk(content=text) for text in texts]
    chunks.append(AIMessageChunk(content="", usage_metadata=usage(10, len(texts))))  # type: ignore[arg-type]
    expected = events_of_chunks("check-1", chunks)
    built = text_message_events("check-1", texts)
    if built != expected:
        raise AssertionError(f"text_message_events drifted from chunks_to_events:\n{built}\n!=\n{expected}")
