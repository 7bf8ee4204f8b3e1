"""Chat model factories the job tests name by import path (`tests.worker.jobs.models:<name>`)."""

from __future__ import annotations

from lcstream.worker.demo.models import (
    ScriptedChatModel,
    reasoning_chunks,
    text_chunks,
    tool_call_chunks,
    usage_chunk,
)

MODULE = "tests.worker.jobs.models"
PROVIDER_ERROR = "provider overloaded: try again later"


def text_model() -> ScriptedChatModel:
    """Plain text with usage."""
    return ScriptedChatModel(
        scripts=[[*text_chunks("Streams keep every event for late readers."), usage_chunk(7, 8)]]
    )


def tool_model() -> ScriptedChatModel:
    """Some text, then one tool call whose arguments arrive in pieces."""
    script = [
        *text_chunks("Let me look that up."),
        *tool_call_chunks("search", "call_1", '{"query": "redis streams", "page": 2}', pieces=5),
        usage_chunk(11, 9),
    ]
    return ScriptedChatModel(scripts=[script])


def reasoning_tools_model() -> ScriptedChatModel:
    """Reasoning, then two parallel tool calls whose argument pieces interleave."""
    first = tool_call_chunks("get_weather", "call_a", '{"city": "Paris"}', index=0, pieces=3)
    second = tool_call_chunks("get_time", "call_b", '{"tz": "Europe/Paris"}', index=1, pieces=3)
    interleaved = [chunk for pair in zip(first, second, strict=True) for chunk in pair]
    script = [*reasoning_chunks("Two lookups are needed."), *interleaved, usage_chunk(20, 14)]
    return ScriptedChatModel(scripts=[script])


def mixed_model() -> ScriptedChatModel:
    """Reasoning, text and a tool call, paced like a provider."""
    script = [
        *reasoning_chunks("Plan first."),
        *text_chunks("Here is the answer you asked for."),
        *tool_call_chunks("lookup", "call_m", '{"id": 7}'),
        usage_chunk(5, 12),
    ]
    return ScriptedChatModel(scripts=[script], chunk_delay_s=0.005)


def failing_model() -> ScriptedChatModel:
    """A provider that fails mid-stream, after some text."""
    # model_construct: pydantic would run AIMessageChunk's validator on the Exception item.
    return ScriptedChatModel.model_construct(
        scripts=[[*text_chunks("This answer will not"), RuntimeError(PROVIDER_ERROR)]], chunk_delay_s=0.0
    )


def paced_model() -> ScriptedChatModel:
    """30 tokens, 50 ms apart: about 1.5 s."""
    return ScriptedChatModel(scripts=[[*text_chunks("word " * 30), usage_chunk(3, 30)]], chunk_delay_s=0.05)


def slow_model() -> ScriptedChatModel:
    """400 tokens, 50 ms apart: 20 s, far longer than any test waits."""
    return ScriptedChatModel(
        scripts=[[*text_chunks("token " * 400), usage_chunk(1, 400)]], chunk_delay_s=0.05
    )


FORBIDDEN_CALLS: list[str] = []


def forbidden_model() -> ScriptedChatModel:
    """A factory no test settings allow: a job naming it must not even call it."""
    FORBIDDEN_CALLS.append("called")
    return text_model()


def not_a_model() -> str:
    """A factory that returns no chat model."""
    return "not a model"


FAST = [f"{MODULE}:{name}" for name in ("text_model", "tool_model", "reasoning_tools_model", "mixed_model")]
ALL = [*FAST, *(f"{MODULE}:{n}" for n in ("failing_model", "paced_model", "slow_model", "not_a_model"))]
