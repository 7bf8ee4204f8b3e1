"""`subscribe_run` on a real redis-server with a worker: every frame of every message of a run, in each
message's order, parallel messages interleaved; any cursor resumes with exactly the rest."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from langgraph.graph import END, START, StateGraph
from redis.asyncio import Redis

from lcstream.streams.errors import RunFailedError
from lcstream.streams.frames import Frame
from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import read_frames
from lcstream.streams.run_handler import RedisStreamHandler
from lcstream.streams.subscribe_run import RunFrame, parse_cursor, subscribe_run
from lcstream.worker.demo.models import ScriptedChatModel, text_chunks
from tests.conftest import WorkerProcess
from tests.streams.agent_graph import State, build_graph, failing_graph

SPACE = Keyspace()


def parallel_graph() -> Any:
    """Two branches at once, each a paced model call: their messages stream at the same time."""
    left = ScriptedChatModel(scripts=[text_chunks("left " * 30)], chunk_delay_s=0.002)
    right = ScriptedChatModel(scripts=[text_chunks("right " * 30)], chunk_delay_s=0.002)

    async def ask_left(state: State) -> dict[str, Any]:
        await left.ainvoke("l")
        return {}

    async def ask_right(state: State) -> dict[str, Any]:
        await right.ainvoke("r")
        return {}

    graph = StateGraph(State)
    graph.add_node("left", ask_left)
    graph.add_node("right", ask_right)
    graph.add_edge(START, "left")
    graph.add_edge(START, "right")
    graph.add_edge("left", END)
    graph.add_edge("right", END)
    return graph.compile()


async def collect(redis: Redis, run_id: str, after: str | None = None) -> list[RunFrame]:
    return [item async for item in subscribe_run(redis, run_id, after=after, keyspace=SPACE)]


async def collect_into(items: list[RunFrame], frames: AsyncIterator[RunFrame]) -> None:
    """Append each item: what came before a raise stays in `items`."""
    async for item in frames:
        items.append(item)


def by_message(items: list[RunFrame]) -> dict[str, list[Frame]]:
    frames: dict[str, list[Frame]] = defaultdict(list)
    for item in items:
        frames[item.message_id].append(item.frame)
    return dict(frames)


async def stored(redis: Redis, run_id: str) -> dict[str, list[Frame]]:
    members = [
        fields[b"m"].decode() for _, fields in await redis.xrange(SPACE.run(run_id).index) if b"m" in fields
    ]
    return {m: await read_frames(redis, m, SPACE) for m in members}


@pytest.mark.parametrize(("name", "graph_of"), [("sequential", build_graph), ("parallel", parallel_graph)])
async def test_every_frame_of_every_message_live_then_any_cursor_gives_exactly_the_rest(
    real_redis: Redis, spawn_worker: Callable[..., WorkerProcess], name: str, graph_of: Callable[[], Any]
) -> None:
    spawn_worker()
    run_id = f"sub-{name}"
    live = asyncio.create_task(collect(real_redis, run_id))  # subscribed before the run starts
    handler = RedisStreamHandler(real_redis, run_id=run_id, keyspace=SPACE)
    await graph_of().ainvoke(State(notes=[]), config={"callbacks": [handler]})
    items = await asyncio.wait_for(live, 30)
    expected = await stored(real_redis, run_id)
    assert by_message(items) == expected and len(expected) >= 2  # each message whole, in its order
    assert len({item.cursor for item in items}) == len(items)  # each frame moves the cursor on
    for point in random.Random(7).sample(range(len(items)), 5):
        cursor = items[point].cursor
        rest = by_message(await collect(real_redis, run_id, after=cursor))
        seqs = parse_cursor(cursor)
        for index, (message_id, frames) in enumerate(expected.items()):
            given = seqs[index] if index < len(seqs) else 0
            assert rest.get(message_id, []) == [f for f in frames if f.seq > given], (cursor, message_id)


async def test_a_failed_run_raises_after_its_last_frame(
    real_redis: Redis, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    spawn_worker()
    handler = RedisStreamHandler(real_redis, run_id="sub-fails", keyspace=SPACE)
    with pytest.raises(RuntimeError):
        await failing_graph("said before the failure", "node broke").ainvoke(
            State(notes=[]), config={"callbacks": [handler]}
        )
    items: list[RunFrame] = []
    failure = asyncio.create_task(collect_into(items, subscribe_run(real_redis, "sub-fails", keyspace=SPACE)))
    with pytest.raises(RunFailedError, match="node broke"):
        await failure
    assert by_message(items) == await stored(real_redis, "sub-fails")


def test_a_cursor_is_seqs_separated_by_dots() -> None:
    assert parse_cursor(None) == [] and parse_cursor("3.0.12") == [3, 0, 12]
    for bad in ("3..1", "-1", "1.x", "9" * 19, " 1"):
        with pytest.raises(ValueError, match="invalid run cursor"):
            parse_cursor(bad)
