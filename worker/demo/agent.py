"""The demo's agent run: a three-node LangGraph graph (plan with a tool call, the tool, answer) run in the
background with `RedisStreamHandler`, followed live as a run with `attach_run`, each message checked
against what the worker stored.

It needs LangGraph (`pip install 'lcstream-worker[graphs]'`); without it the demo says so and skips it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, TypedDict

from langchain_core.messages import message_to_dict
from redis.asyncio import Redis
from rich.console import Console

from lcstream.streams.attach_run import attach_run
from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import read_outcome
from lcstream.streams.run_handler import RedisStreamHandler
from lcstream.worker.demo.models import (
    ScriptedChatModel,
    reasoning_chunks,
    text_chunks,
    tool_call_chunks,
    usage_chunk,
)

OUTCOME_WAIT_S = 10.0


class Trip(TypedDict):
    question: str
    forecast: str
    answer: str


def _graph(pace_s: float) -> Any:
    from langgraph.graph import END, START, StateGraph  # the optional extra: imported when used

    planner = ScriptedChatModel(chunk_delay_s=pace_s, scripts=[[
        *reasoning_chunks("The weather needs a lookup first."),
        *text_chunks("Checking the forecast."),
        *tool_call_chunks("get_weather", "call_weather", '{"city": "Paris"}'),
        usage_chunk(20, 9),
    ]])  # fmt: skip
    writer = ScriptedChatModel(chunk_delay_s=pace_s, scripts=[[
        *text_chunks("Sunny in Paris, 24 degrees: take sunglasses, leave the umbrella."), usage_chunk(35, 12)
    ]])  # fmt: skip

    async def plan(state: Trip) -> dict[str, Any]:
        message = await planner.ainvoke(state["question"])
        return {"forecast": json.dumps(message.tool_calls[0]["args"])}

    async def get_weather(state: Trip) -> dict[str, Any]:
        return {"forecast": f"{state['forecast']}: sunny, 24 C"}  # the tool: no model call

    async def answer(state: Trip) -> dict[str, Any]:
        return {"answer": (await writer.ainvoke(f"Answer with: {state['forecast']}")).text}

    graph = StateGraph(Trip)
    graph.add_node("plan", plan)
    graph.add_node("get_weather", get_weather)
    graph.add_node("answer", answer)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "get_weather")
    graph.add_edge("get_weather", "answer")
    graph.add_edge("answer", END)
    return graph.compile()


async def follow_agent_run(redis: Redis, keyspace: Keyspace, console: Console, *, pace_s: float) -> int:
    """Run the agent in the background and follow it live; return how many messages differ from the
    worker's stored outcome (0 when all match)."""
    try:
        graph = _graph(pace_s)
    except ImportError:
        console.print("agent run skipped: LangGraph is not installed (pip install 'lcstream-worker[graphs]')")
        return 0
    run_id = f"demo-run-{uuid.uuid4()}"
    handler = RedisStreamHandler(redis, run_id=run_id, keyspace=keyspace)
    trip = Trip(question="What should I pack for Paris?", forecast="", answer="")
    background = asyncio.create_task(graph.ainvoke(trip, config={"callbacks": [handler]}))
    console.print(f"[bold]an agent run in the background, followed live as run {run_id}[/bold]")
    differ = 0
    async for message in attach_run(redis, run_id, keyspace=keyspace):
        console.print(f"[cyan]{message.node}[/cyan] {message.message_id}: ", end="", highlight=False)
        async for delta in message.text:
            console.print(delta, end="", highlight=False, markup=False)
        calls = [f"{call['name']}({call['args']})" for call in await message.tool_calls]
        console.print(f"  -> {', '.join(calls)}" if calls else "", highlight=False, markup=False)
        differ += not await _stored_equals(
            redis, keyspace, str(message.message_id), message_to_dict(await message.output)
        )
    await background
    verdict = (
        "each equals the worker's stored outcome"
        if not differ
        else f"{differ} differ from the stored outcome"
    )
    console.print(f"[bold]run {run_id} completed: {verdict}[/bold]")
    return differ


async def _stored_equals(redis: Redis, keyspace: Keyspace, message_id: str, followed: dict[str, Any]) -> bool:
    """Whether the worker's outcome of M (waited for, briefly) is the message the follower assembled."""
    deadline = asyncio.get_running_loop().time() + OUTCOME_WAIT_S
    while (outcome := await read_outcome(redis, message_id, keyspace)) is None:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)  # polling R(M): the worker writes it right after the last frame
    return outcome.message == followed
