"""A scripted chat model that streams given `AIMessageChunk`s, for the demo, tests and examples.

langchain-core's own fakes stream text only; this one also streams reasoning
blocks, tool-call chunks and usage, at a chosen pace, through the real
`astream_events(version="v3")` machinery.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, field_validator


class ScriptedChatModel(BaseChatModel):
    """Streams `scripts[i]` on its i-th call (cycling), one chunk every `chunk_delay_s`.

    A chunk that is an `Exception` instance is raised at that point instead,
    like a provider failing mid-stream.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    # Any: pydantic must not coerce an Exception item into a chunk; checked below.
    scripts: Sequence[Sequence[Any]]
    chunk_delay_s: float = 0.0
    calls: int = 0

    @field_validator("scripts")
    @classmethod
    def _check_scripts(cls, scripts: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
        if not scripts:
            raise ValueError("scripts needs at least one script")
        for script in scripts:
            for item in script:
                if not isinstance(item, AIMessageChunk | Exception):
                    raise ValueError(
                        f"script items are AIMessageChunk or Exception, not {type(item).__name__}"
                    )
        return scripts

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def _next_script(self) -> Sequence[AIMessageChunk | Exception]:
        script = self.scripts[self.calls % len(self.scripts)]
        self.calls += 1
        return script

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        merged: AIMessageChunk | None = None
        for chunk in self._stream(messages, stop, run_manager, **kwargs):
            assert isinstance(chunk.message, AIMessageChunk)
            merged = chunk.message if merged is None else merged + chunk.message
        message = AIMessage(**(merged.model_dump(exclude={"type"}) if merged else {"content": ""}))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for item in self._next_script():
            if isinstance(item, Exception):
                raise item
            yield ChatGenerationChunk(message=item)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for item in self._next_script():
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
            if isinstance(item, Exception):
                raise item
            yield ChatGenerationChunk(message=item)


def text_chunks(text: str) -> list[AIMessageChunk]:
    """One chunk per word (whitespace kept), like a provider's token stream."""
    words = text.split(" ")
    return [AIMessageChunk(content=w + (" " if i < len(words) - 1 else "")) for i, w in enumerate(words)]


def reasoning_chunks(reasoning: str) -> list[AIMessageChunk]:
    """Reasoning content blocks, one per word."""
    return [
        AIMessageChunk(content=[{"type": "reasoning", "reasoning": w + " ", "index": "r0"}])
        for w in reasoning.split(" ")
    ]


def tool_call_chunks(
    name: str, call_id: str, args_json: str, *, index: int = 0, pieces: int = 4
) -> list[AIMessageChunk]:
    """A tool call whose JSON arguments arrive in `pieces` parts of about equal length."""
    step = max(1, -(-len(args_json) // pieces))
    parts = [args_json[i : i + step] for i in range(0, len(args_json), step)]
    return tool_call_part_chunks(name, call_id, parts, index=index)


def tool_call_part_chunks(
    name: str, call_id: str, parts: Sequence[str], *, index: int
) -> list[AIMessageChunk]:
    """A tool call whose JSON arguments arrive as `parts`; the name and id come with the first."""
    return [
        AIMessageChunk(
            content="",
            tool_call_chunks=[
                {
                    "type": "tool_call_chunk",
                    "name": name if i == 0 else None,
                    "id": call_id if i == 0 else None,
                    "args": part,
                    "index": index,
                }
            ],
        )
        for i, part in enumerate(parts)
    ]


def usage_chunk(input_tokens: int, output_tokens: int) -> AIMessageChunk:
    """The closing chunk carrying token usage."""
    return AIMessageChunk(
        content="",
        usage_metadata={
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
        chunk_position="last",
    )


def demo_model() -> ScriptedChatModel:
    """A factory for `LCSTREAM_MODEL` to try jobs without a provider: reasoning, text and a tool call,
    one chunk every 40 ms, whatever the prompt."""
    script = [
        *reasoning_chunks("A short answer will do."),
        *text_chunks("Redis Streams keep every event, so any process can follow this message."),
        *tool_call_chunks("lookup_docs", "call_demo", '{"topic": "streams"}'),
        usage_chunk(12, 20),
    ]
    return ScriptedChatModel(scripts=[script], chunk_delay_s=0.04)
