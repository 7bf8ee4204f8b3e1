"""`python -m tests.benchmarks.run_handler`: what `RedisStreamHandler` adds to a graph run's wall time
(`make bench-runs`).

A one-node LangGraph graph whose scripted model streams 2,000 tokens runs under `ainvoke` with a
handler that only receives the protocol events (so the model streams, as it does for any consumer of
them), then with `RedisStreamHandler`, alternately, on a redis-server of its own. The table gives the
median of each and the difference. Unpaced is the worst case (only CPU: every event costs the
handler's queueing); paced at 1 ms a token is closer to a real model, whose tokens arrive over seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.callbacks import AsyncCallbackHandler
from langgraph.graph import END, START, StateGraph
from rich.console import Console
from rich.table import Table

from lcstream.streams.connection import connect
from lcstream.streams.keys import Keyspace
from lcstream.streams.langchain_internals import V2StreamingOptIn
from lcstream.streams.run_handler import RedisStreamHandler
from lcstream.worker.demo.models import ScriptedChatModel, text_chunks
from tests.conftest import start_redis_server, stop_redis_server

TOKENS = 2_000


class State(TypedDict):
    text: str


class Listener(AsyncCallbackHandler, V2StreamingOptIn):
    """Takes every protocol event and does nothing with it: the baseline of a streamed run."""

    async def on_stream_event(self, event: Any, **kwargs: Any) -> None:
        """Nothing."""


def graph_of(pace_s: float) -> Any:
    model = ScriptedChatModel(
        scripts=[text_chunks(" ".join(f"t{n}" for n in range(TOKENS)))], chunk_delay_s=pace_s
    )

    async def speak(state: State) -> State:
        return {"text": (await model.ainvoke("go")).text}

    graph = StateGraph(State)
    graph.add_node("speak", speak)
    graph.add_edge(START, "speak")
    graph.add_edge("speak", END)
    return graph.compile()


async def timed(graph: Any, config: dict[str, Any]) -> float:
    started = time.perf_counter()
    await graph.ainvoke(State(text=""), config=config)
    return time.perf_counter() - started


async def measure(url: str, pace_s: float, runs: int) -> tuple[float, float]:
    """Median seconds of a run with the listener and with the handler (alternating, after a warm-up)."""
    redis = connect(url)
    graph = graph_of(pace_s)
    without: list[float] = []
    with_handler: list[float] = []
    try:
        for n in range(runs + 1):
            handler = RedisStreamHandler(redis, run_id=f"bench-{pace_s}-{n}", keyspace=Keyspace())
            plain = await timed(graph, {"callbacks": [Listener()]})
            published = await timed(graph, {"callbacks": [handler]})
            if n:  # the first of each is a warm-up
                without.append(plain)
                with_handler.append(published)
    finally:
        await redis.aclose()
    return statistics.median(without), statistics.median(with_handler)


async def main(runs: int) -> None:
    warnings.filterwarnings("ignore", message=".*v3 streaming protocol.*")
    with tempfile.TemporaryDirectory() as directory:
        server = start_redis_server(Path(directory))
        try:
            rows = [(pace, *await measure(server.url, pace, runs)) for pace in (0.0, 0.001)]
        finally:
            stop_redis_server(server)
    table = Table(title=f"a graph run of {TOKENS:,} tokens, median of {runs} runs each")
    for column in ("model", "events only", "RedisStreamHandler", "added"):
        table.add_column(column, justify="right")
    for pace, plain, published in rows:
        model = "unpaced" if pace == 0 else f"{pace * 1000:g} ms a token"
        added = (published - plain) / plain
        table.add_row(model, f"{plain * 1000:.0f} ms", f"{published * 1000:.0f} ms", f"{added:+.1%}")
    Console().print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    asyncio.run(main(parser.parse_args().runs))
