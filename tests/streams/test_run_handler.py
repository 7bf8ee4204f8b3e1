"""`RedisStreamHandler` on its own: the sync API refused clearly, failures ending their message and the
run, subgraph namespaces, a Redis outage never raised into the model's run, the private opt-in found."""

from __future__ import annotations

import time
import warnings
from typing import Any

import pytest
import structlog
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt
from redis.asyncio import Redis

from lcstream.streams import langchain_internals
from lcstream.streams.attach_run import attach_run
from lcstream.streams.connection import connect
from lcstream.streams.errors import RunFailedError
from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import read_events
from lcstream.streams.run_handler import HandlerReusedError, RedisStreamHandler, SyncUseError, call_location
from lcstream.streams.run_index import run_status
from lcstream.streams.tee_run import tee_run
from lcstream.worker.demo.models import ScriptedChatModel, text_chunks
from tests.conftest import free_port
from tests.streams.agent_graph import State, build_graph

SPACE = Keyspace()


def test_langchain_core_still_has_the_v2_opt_in_marker() -> None:
    # Without it, `ainvoke` would stream v1 chunks past the handler and publish nothing.
    assert langchain_internals.V2_OPT_IN_FOUND, (
        "langchain_core.tracers._streaming._V2StreamingCallbackHandler moved"
    )


def test_the_sync_api_is_refused_with_what_to_use_instead(real_redis: Redis) -> None:
    handler = RedisStreamHandler(real_redis, keyspace=SPACE)
    model = ScriptedChatModel(scripts=[text_chunks("never published")])
    for call in (lambda: model.invoke("hi", config={"callbacks": [handler]}),
                 lambda: build_graph().invoke(State(notes=[]), config={"callbacks": [handler]})):  # fmt: skip
        with pytest.raises(SyncUseError, match="ainvoke, astream or astream_events"):
            call()


def test_the_namespace_is_the_graphs_above_the_call() -> None:
    assert call_location({"langgraph_node": "plan", "langgraph_checkpoint_ns": "plan:t1"}) == ([], "plan")
    nested = {
        "langgraph_node": "inner",
        "langgraph_checkpoint_ns": "child:t1|inner:t2",
        "checkpoint_ns": "child:t1",
    }
    assert call_location(nested) == (["child:t1"], "inner")
    assert call_location(None) == ([], None)  # a model called outside any graph


async def test_a_subgraph_s_call_is_announced_with_its_namespace(real_redis: Redis) -> None:
    model = ScriptedChatModel(scripts=[text_chunks("from inside")])

    async def inner(state: State) -> dict[str, Any]:
        await model.ainvoke("x")
        return {}

    sub = StateGraph(State)
    sub.add_node("inner", inner)
    sub.add_edge(START, "inner")
    sub.add_edge("inner", END)
    outer = StateGraph(State)
    outer.add_node("child", sub.compile())
    outer.add_edge(START, "child")
    outer.add_edge("child", END)
    handler = RedisStreamHandler(real_redis, run_id="run-nested", keyspace=SPACE)
    await outer.compile().ainvoke(State(notes=[]), config={"callbacks": [handler]})
    (stream,) = [s async for s in attach_run(real_redis, "run-nested", keyspace=SPACE)]
    assert stream.node == "inner" and len(stream.namespace) == 1 and stream.namespace[0].startswith("child:")
    assert await stream.text == "from inside"


async def test_a_model_that_fails_mid_stream_ends_its_message_and_the_run(real_redis: Redis) -> None:
    model = ScriptedChatModel(scripts=[[*text_chunks("half an"), RuntimeError("provider went away")]])
    handler = RedisStreamHandler(real_redis, run_id="run-broken", keyspace=SPACE)
    with pytest.raises(RuntimeError, match="provider went away"):
        await model.ainvoke("hi", config={"callbacks": [handler]})
    streams = attach_run(real_redis, "run-broken", keyspace=SPACE)
    stream = await anext(streams)
    with pytest.raises(RuntimeError, match="provider went away"):  # as the in-process stream raises
        await stream.output
    last = (await read_events(real_redis, str(stream.message_id), SPACE))[-1]
    assert (last["event"], last["code"]) == ("error", "model_error")
    with pytest.raises(RunFailedError, match="provider went away"):
        await anext(streams)


async def test_redis_going_away_is_logged_never_raised_into_the_run() -> None:
    unreachable = connect(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=0.5)
    handler = RedisStreamHandler(unreachable, keyspace=SPACE, retry_deadline_s=1.0)
    started = time.monotonic()
    with structlog.testing.capture_logs() as logged:
        output = await build_graph().ainvoke(State(notes=[]), config={"callbacks": [handler]})
    await unreachable.aclose()
    assert output["notes"][-1] == "It is sunny in Paris and the time is noon."
    assert time.monotonic() - started < 10  # the writes gave up after their deadline
    assert {line["event"] for line in logged} >= {"handler-write-failed", "handler-end-failed"}


async def test_a_handler_publishes_one_run_and_refuses_a_second(real_redis: Redis) -> None:
    model = ScriptedChatModel(scripts=[text_chunks("first"), text_chunks("second")])
    handler = RedisStreamHandler(real_redis, keyspace=SPACE)
    await model.ainvoke("one", config={"callbacks": [handler]})
    with pytest.raises(HandlerReusedError, match="one handler per run"):
        await model.ainvoke("two", config={"callbacks": [handler]})


def pausing_graph() -> Any:
    """One node that calls a model, then interrupts the run (LangGraph waits for a human)."""
    model = ScriptedChatModel(scripts=[text_chunks("before the pause")])

    async def ask(state: State) -> dict[str, Any]:
        await model.ainvoke("q")
        return {"notes": [interrupt("a human decides")]}

    graph = StateGraph(State)
    graph.add_node("ask", ask)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", END)
    return graph.compile(checkpointer=InMemorySaver())


async def test_a_run_a_node_interrupts_ends_interrupted(real_redis: Redis) -> None:
    handler = RedisStreamHandler(real_redis, run_id="run-paused", keyspace=SPACE)
    config: Any = {"callbacks": [handler], "configurable": {"thread_id": "paused"}}
    output = await pausing_graph().ainvoke(State(notes=[]), config=config)
    assert "__interrupt__" in output and handler.ended == "interrupted"
    streams = attach_run(real_redis, "run-paused", keyspace=SPACE)
    assert await (await anext(streams)).text == "before the pause"
    with pytest.raises(RunFailedError) as paused:
        await anext(streams)
    assert paused.value.status == "interrupted"


async def test_tee_run_of_an_interrupted_run_ends_it_interrupted(real_redis: Redis) -> None:
    warnings.filterwarnings("ignore", message=".*v3 streaming protocol.*")
    config: Any = {"configurable": {"thread_id": "teed-paused"}}
    run = await pausing_graph().astream_events(State(notes=[]), config=config, version="v3")
    teed = tee_run(real_redis, run, run_id="teed-paused", keyspace=SPACE)
    assert [await stream.text async for stream in teed.messages] == ["before the pause"]
    await teed.finished()
    assert await run_status(real_redis, SPACE, "teed-paused") == "interrupted"
