"""Runs end to end on a real redis-server: a LangGraph graph run with `RedisStreamHandler` in one
process, followed with `attach_run` in another, against LangGraph's own `run.messages`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from langchain_core.language_models.chat_model_stream import AsyncChatModelStream
from redis.asyncio import Redis

from lcstream.streams.attach_run import attach_run
from lcstream.streams.errors import MessageFailedError, RunFailedError
from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import read_events
from lcstream.streams.run_handler import RedisStreamHandler
from lcstream.streams.tee_run import tee_run
from lcstream.worker.demo.models import ScriptedChatModel, text_chunks
from tests.conftest import WorkerProcess
from tests.helpers import wait_for
from tests.streams.agent_graph import State, build_graph, describe, failing_graph

PACE_S = 0.005  # the graph streams while the follower reads: live, not a replay


def normalized(value: Any) -> Any:
    """As JSON gives it back (tuples become lists): how the other process's oracle arrives."""
    return orjson.loads(orjson.dumps(value))


def without_ids(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with every id a new execution changes (message ids, the output's id) left out."""
    stripped = []
    for message in normalized(messages):
        message.pop("message_id")
        message["output"]["data"].pop("id")
        stripped.append(message)
    return stripped


async def follow(redis: Redis, run_id: str) -> list[dict[str, Any]]:
    """Every message of run R as `attach_run` gives it, described like the oracle."""
    return [await describe(stream) async for stream in attach_run(redis, run_id, keyspace=Keyspace())]


async def texts_then_failure(
    redis: Redis, run_id: str, **options: Any
) -> tuple[list[tuple[str, str, str | None]], RunFailedError]:
    """Follow a run that fails: (message id, text shown, the message's failure code) of each message,
    then the run's failure."""
    seen: list[tuple[str, str, str | None]] = []
    try:
        async for stream in attach_run(redis, run_id, keyspace=Keyspace(), **options):
            text, code = "", None
            try:
                async for delta in stream.text:
                    text += delta
            except MessageFailedError as exc:
                code = exc.code
            seen.append((str(stream.message_id), text, code))
    except RunFailedError as failure:
        return seen, failure
    raise AssertionError(f"run {run_id} did not fail")


async def run_graph_process(env: dict[str, str], mode: str, run_id: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.streams.agent_graph", mode, run_id, str(PACE_S),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()[-3000:]
    result: dict[str, Any] = orjson.loads(out.splitlines()[-1])
    return result


async def test_attach_run_in_another_process_gives_langgraph_s_own_messages_live_and_replayed(
    real_redis: Redis, worker_env: dict[str, str]
) -> None:
    follower = asyncio.create_task(follow(real_redis, "run-v3"))  # attached before the run starts
    oracle = (await run_graph_process(worker_env, "v3", "run-v3"))["messages"]
    live = normalized(await asyncio.wait_for(follower, 30))
    replayed = normalized(await follow(real_redis, "run-v3"))
    assert [(m["node"], m["namespace"]) for m in oracle] == [("plan", []), ("answer", []), ("answer", [])]
    assert oracle[0]["reasoning"] and len(oracle[0]["tool_calls"]) == 2  # reasoning, parallel tool calls
    assert live == oracle
    assert replayed == oracle


async def test_a_run_under_plain_ainvoke_publishes_the_same_messages(
    real_redis: Redis, worker_env: dict[str, str]
) -> None:
    warnings.filterwarnings("ignore", message=".*v3 streaming protocol.*")
    run = await build_graph().astream_events(State(notes=[]), version="v3")
    oracle = [await describe(stream) async for stream in run.messages]  # a run of its own: other ids
    result = await run_graph_process(worker_env, "ainvoke", "run-ainvoke")
    assert result["output"]["notes"][-1] == "It is sunny in Paris and the time is noon."
    published = await follow(real_redis, "run-ainvoke")
    assert without_ids(published) == without_ids(oracle)
    assert all(m["message_id"].startswith("lc_run--") for m in published)


async def test_a_failing_run_yields_what_ran_then_raises(real_redis: Redis) -> None:
    handler = RedisStreamHandler(real_redis, run_id="run-fails", keyspace=Keyspace())
    with pytest.raises(RuntimeError, match="the tool broke"):
        await failing_graph("first and only answer", "the tool broke").ainvoke(
            State(notes=[]), config={"callbacks": [handler]}
        )
    assert handler.ended == "failed"
    seen, failure = await texts_then_failure(real_redis, "run-fails")
    assert [text for _, text, _ in seen] == ["first and only answer"]
    assert (failure.status, failure.code, failure.error_message) == ("failed", "run_error", "the tool broke")


async def test_a_model_called_alone_is_a_run_of_one_message(real_redis: Redis) -> None:
    model = ScriptedChatModel(scripts=[text_chunks("just me")])
    handler = RedisStreamHandler(real_redis, keyspace=Keyspace())
    answer = await model.ainvoke("hi", config={"callbacks": [handler]})
    assert handler.run_id is not None and handler.ended == "completed"
    (message,) = await follow(real_redis, handler.run_id)
    assert message["text"] == answer.text == "just me"
    assert message["message_id"] == answer.id and message["node"] is None


async def test_kill_9_of_the_graph_process_ends_the_run_failed_within_its_bound(
    real_redis: Redis, worker_env: dict[str, str], spawn_worker: Callable[..., WorkerProcess]
) -> None:
    idle_s, run_idle_s = 1.0, 1.0
    spawn_worker(LCSTREAM_IDLE_TIMEOUT_S=str(idle_s))  # fails the message its producer left open
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.streams.agent_graph", "v3", "run-killed", "0.2",
        env=worker_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    follower = asyncio.create_task(
        texts_then_failure(real_redis, "run-killed", run_idle_timeout_s=run_idle_s)
    )
    first = Keyspace().run("run-killed").index

    async def streaming() -> bool:
        entries = await real_redis.xrange(first)
        if not entries:
            return False
        events = Keyspace().message(entries[0][1][b"m"].decode()).events
        return int(await real_redis.xlen(events)) >= 19  # past the reasoning: some text is out

    await wait_for(streaming, timeout_s=30, what="the first message streaming")
    process.kill()
    killed_at = time.monotonic()
    await process.wait()
    seen, failure = await asyncio.wait_for(follower, 30)
    ended_after_s = time.monotonic() - killed_at
    ((message_id, text, code),) = seen  # the one message that was written
    events = await read_events(real_redis, message_id, Keyspace())
    shown = AsyncChatModelStream(message_id=message_id)
    for event in events:
        shown.dispatch(event)
    assert text == "".join(shown.text._deltas) and text  # every event written reached the follower
    assert code == "idle_timeout"  # the worker failed the message its producer left open
    assert (failure.status, failure.code) == ("failed", "idle_timeout")
    assert ended_after_s < idle_s + run_idle_s + 10, ended_after_s
    print(
        f"\nkill -9 mid-run: the run ended {ended_after_s:.1f} s after (bounds {idle_s:g} + {run_idle_s:g} s)"
    )


async def test_tee_run_copies_a_v3_run_the_caller_still_consumes(real_redis: Redis) -> None:
    warnings.filterwarnings("ignore", message=".*v3 streaming protocol.*")
    run = await build_graph(PACE_S).astream_events(State(notes=[]), version="v3")
    teed = tee_run(real_redis, run, run_id="teed-1", keyspace=Keyspace())
    follower = asyncio.create_task(follow(real_redis, "teed-1"))
    seen = [await describe(stream) async for stream in teed.messages]  # the caller's own view
    output = await run.output()  # the run's other projections are the caller's, untouched
    await teed.finished()
    assert output is not None and output["notes"][-1] == "It is sunny in Paris and the time is noon."
    assert normalized(await asyncio.wait_for(follower, 30)) == normalized(seen)
    assert [m["node"] for m in seen] == ["plan", "answer", "answer"]
    end = (await real_redis.xrevrange(Keyspace().run("teed-1").index, count=1))[0][1]
    assert end[b"end"] == b"completed"


async def test_a_graph_under_astream_publishes_its_messages_too(real_redis: Redis) -> None:
    warnings.filterwarnings("ignore", message=".*v3 streaming protocol.*")
    run = await build_graph().astream_events(State(notes=[]), version="v3")
    oracle = [await describe(stream) async for stream in run.messages]
    handler = RedisStreamHandler(real_redis, run_id="run-astream", keyspace=Keyspace())
    chunks = [
        chunk async for chunk in build_graph().astream(State(notes=[]), config={"callbacks": [handler]})
    ]
    assert chunks and handler.ended == "completed"
    assert without_ids(await follow(real_redis, "run-astream")) == without_ids(oracle)
