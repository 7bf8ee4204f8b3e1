"""A small LangGraph agent for the run tests: three chat-model calls across two nodes, the first with
reasoning and two parallel tool calls, and what a message of it looks like to a reader.

`python -m tests.streams.agent_graph MODE RUN_ID PACE_S` runs it with `RedisStreamHandler` on
`LCSTREAM_REDIS_URL` (MODE `v3`: through `astream_events(version="v3")`, `ainvoke`: plain) and prints
one JSON line: LangGraph's own `run.messages`, described (v3), or the graph's output (ainvoke).
"""

from __future__ import annotations

import asyncio
import sys
import warnings
from typing import Any, TypedDict

import orjson
from langchain_core.language_models.chat_model_stream import AsyncChatModelStream
from langchain_core.messages import message_to_dict
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from lcstream.streams.connection import connect
from lcstream.streams.run_handler import RedisStreamHandler
from lcstream.worker.demo.models import (
    ScriptedChatModel,
    reasoning_chunks,
    text_chunks,
    tool_call_chunks,
    usage_chunk,
)


class State(TypedDict):
    notes: list[str]


def build_graph(pace_s: float = 0.0) -> CompiledStateGraph[State, None, State, State]:
    """plan (reasoning, text, two tool calls at once) -> answer (two calls: a draft, then the answer)."""
    planner = ScriptedChatModel(
        chunk_delay_s=pace_s,
        scripts=[[
            *reasoning_chunks("The user wants weather and time, so call both tools at once."),
            *text_chunks("Looking up both."),
            *tool_call_chunks("get_weather", "call_w", '{"city": "Paris"}', index=0, pieces=3),
            *tool_call_chunks("get_time", "call_t", '{"tz": "Europe/Paris"}', index=1, pieces=3),
            usage_chunk(30, 20),
        ]],
    )  # fmt: skip
    answerer = ScriptedChatModel(
        chunk_delay_s=pace_s,
        scripts=[
            [*text_chunks("Draft: sunny, noon."), usage_chunk(40, 5)],
            [*text_chunks("It is sunny in Paris and the time is noon."), usage_chunk(50, 11)],
        ],
    )

    async def plan(state: State) -> dict[str, Any]:
        message = await planner.ainvoke("weather and time in Paris?")
        return {"notes": [*state["notes"], f"{len(message.tool_calls)} tool calls"]}

    async def answer(state: State) -> dict[str, Any]:
        draft = await answerer.ainvoke("draft")
        final = await answerer.ainvoke(f"improve: {draft.text}")
        return {"notes": [*state["notes"], final.text]}

    graph = StateGraph(State)
    graph.add_node("plan", plan)
    graph.add_node("answer", answer)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "answer")
    graph.add_edge("answer", END)
    return graph.compile()


def failing_graph(said: str, error: str) -> CompiledStateGraph[State, None, State, State]:
    """One node that calls a model (it says `said`), then raises RuntimeError(`error`)."""
    model = ScriptedChatModel(scripts=[text_chunks(said)])

    async def ask_then_fail(state: State) -> dict[str, Any]:
        await model.ainvoke("question")
        raise RuntimeError(error)

    graph = StateGraph(State)
    graph.add_node("work", ask_then_fail)
    graph.add_edge(START, "work")
    graph.add_edge("work", END)
    return graph.compile()


async def describe(stream: AsyncChatModelStream) -> dict[str, Any]:
    """What a reader sees of one message: where it ran, and each projection's final value."""
    output = await stream.output
    return {
        "message_id": stream.message_id,
        "namespace": list(stream.namespace),
        "node": stream.node,
        "text": await stream.text,
        "reasoning": await stream.reasoning,
        "tool_calls": await stream.tool_calls,
        "output": message_to_dict(output),
    }


async def main(mode: str, run_id: str, pace_s: float) -> None:
    warnings.filterwarnings("ignore", message=".*v3 streaming protocol.*")
    redis = connect()
    handler = RedisStreamHandler(redis, run_id=run_id)
    graph, state = build_graph(pace_s), State(notes=[])
    try:
        if mode == "v3":
            run = await graph.astream_events(state, version="v3", config={"callbacks": [handler]})
            described = [await describe(stream) async for stream in run.messages]
            print(orjson.dumps({"messages": described}).decode())
        else:
            output = await graph.ainvoke(state, config={"callbacks": [handler]})
            print(orjson.dumps({"output": output}).decode())
    finally:
        await redis.aclose()


def agent() -> CompiledStateGraph[State, None, State, State]:
    """The graph as a factory for graph-run jobs (`LCSTREAM_ALLOWED_GRAPHS`)."""
    return build_graph()


def slow_agent() -> CompiledStateGraph[State, None, State, State]:
    """The graph streaming a chunk every 0.2 s: a run still going when a test cancels it."""
    return build_graph(0.2)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
