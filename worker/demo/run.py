"""`lcstream demo`: producers, a worker and a live view, end to end on one Redis.

Several scripted chat models stream text, reasoning and tool calls through
`astream_events(version="v3")`; `tee_stream` copies their events into Redis;
a `Worker` rebuilds each message and writes frames; the view reads the
frames back from `O(M)` like a dashboard would, and at the end every stored
outcome is checked against what the in-process stream assembled. Then a small
LangGraph agent runs in the background and is followed live as a run (`agent`).
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from typing import Any

from langchain_core._api.beta_decorator import LangChainBetaWarning
from langchain_core.messages import message_to_dict
from redis.asyncio import Redis
from redis.typing import KeyT, StreamIdT
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from lcstream.config import Settings
from lcstream.streams.connection import connect_single
from lcstream.streams.frames import Frame
from lcstream.streams.keys import Keyspace
from lcstream.streams.ordering import parse_entry_id
from lcstream.streams.reader import read_outcome
from lcstream.streams.snapshot import Snapshot
from lcstream.streams.tee import tee_stream
from lcstream.worker.demo.agent import follow_agent_run
from lcstream.worker.demo.models import (
    ScriptedChatModel,
    reasoning_chunks,
    text_chunks,
    tool_call_chunks,
    usage_chunk,
)
from lcstream.worker.engine.runner import Worker

_ANSWERS = [
    "Redis Streams keep every event, so a late reader replays from the first token.",
    "A consumer group shares the work: each message is owned by one worker at a time.",
    "Frames carry a sequence number, so a dashboard resumes exactly where it stopped.",
    "The worker feeds each event into langchain-core's own stream object to assemble it.",
]


def _script(i: int) -> list[Any]:
    chunks: list[Any] = []
    if i % 2 == 0:
        chunks += reasoning_chunks("The user wants a short answer; keep it to one sentence.")
    chunks += text_chunks(_ANSWERS[i % len(_ANSWERS)])
    if i % 3 == 0:
        chunks += tool_call_chunks("lookup_docs", f"call_{i}", f'{{"topic": "streams", "page": {i}}}')
    chunks.append(usage_chunk(12 + i, len(chunks)))
    return chunks


def _render(views: list[Snapshot], worker: Worker) -> Table:
    table = Table(title=f"lcstream demo: {worker.stats.events} events, {worker.stats.frames} frames")
    table.add_column("message", style="cyan", no_wrap=True)
    table.add_column("status")
    table.add_column("frames", justify="right")
    table.add_column("reasoning / text / tool calls", overflow="fold")
    colours = {"completed": "green", "failed": "red", "streaming": "yellow"}
    for view in views:
        body = Text()
        if view.reasoning:
            body.append(view.reasoning[-70:], style="italic magenta")
            body.append("\n")
        body.append(view.text[-110:])
        for _, call in sorted(view.tool_calls.items()):
            body.append(f"\n-> {call['name'] or '?'}({call['args']})", style="blue")
        status = Text(view.status, style=colours.get(view.status, "dim"))
        table.add_row(view.message_id[-14:], status, str(view.seq), body)
    return table


async def _follow(redis: Redis, keyspace: Keyspace, views: list[Snapshot], refresh: Any) -> None:
    """Read every message's `O(M)` in one multiplexed XREAD until all have ended."""
    by_key = {keyspace.message(v.message_id).out.encode(): v for v in views}
    cursors: dict[KeyT, StreamIdT] = dict.fromkeys(by_key, b"0-0")
    while cursors:
        reply = await redis.xread(dict(cursors), block=200)
        for key, entries in reply or ():
            view = by_key[key]
            for entry_id, fields in entries:
                view.apply(Frame.from_body(parse_entry_id(entry_id)[1], fields[b"f"]))
            cursors[key] = entries[-1][0]
            if view.status in ("completed", "failed"):
                del cursors[key]
        refresh()


async def run_demo(settings: Settings, *, messages: int, pace_s: float, console: Console) -> int:
    """Run the demo against `settings.redis_url`; return 0 when every outcome matched in-process."""
    warnings.filterwarnings("ignore", category=LangChainBetaWarning)  # v3 streaming is the point here
    redis = connect_single(settings.redis_url, socket_timeout_s=settings.socket_timeout_s)
    keyspace = Keyspace.from_settings(settings)
    worker = Worker(redis, settings)
    run_ids = [uuid.uuid4() for _ in range(messages)]
    ids = [f"lc_run--{run_id}" for run_id in run_ids]  # the id langchain gives a run's message
    views = [Snapshot(m) for m in ids]
    try:
        async with asyncio.TaskGroup() as tasks:
            worker_task = tasks.create_task(worker.run())
            streams = []
            for i, (run_id, message_id) in enumerate(zip(run_ids, ids, strict=True)):
                model = ScriptedChatModel(scripts=[_script(i)], chunk_delay_s=pace_s)
                stream = await model.astream_events(f"question {i}", {"run_id": run_id}, version="v3")
                streams.append(stream)
                tasks.create_task(tee_stream(redis, stream, message_id=message_id, keyspace=keyspace))
            with Live(_render(views, worker), console=console, refresh_per_second=12) as live:
                await _follow(redis, keyspace, views, lambda: live.update(_render(views, worker)))
            in_process = [message_to_dict(await s.output) for s in streams]
            messages_failed = await _report(redis, keyspace, ids, in_process, console)
            agent_differs = await follow_agent_run(redis, keyspace, console, pace_s=pace_s)
            worker.stop()
            await worker_task
        return 0 if not messages_failed and not agent_differs else 1
    finally:
        await redis.aclose()


async def _report(
    redis: Redis, keyspace: Keyspace, ids: list[str], in_process: list[dict[str, Any]], console: Console
) -> int:
    mismatches = 0
    panels = []
    for message_id, expected in zip(ids, in_process, strict=True):
        outcome = await read_outcome(redis, message_id, keyspace)
        stored = outcome.message if outcome else None
        same = stored == expected
        mismatches += not same
        data = stored["data"] if stored else {}
        summary = Text()
        summary.append(f"{outcome.status if outcome else 'missing'}", style="green" if same else "red")
        summary.append(f"  matches in-process stream: {'yes' if same else 'NO'}\n")
        summary.append(f"content blocks: {[b.get('type') for b in data.get('content', [])]}\n")
        summary.append(f"tool_calls: {data.get('tool_calls')}\nusage: {data.get('usage_metadata')}")
        panels.append(Panel(summary, title=f"AIMessage {message_id}", expand=False))
    console.print(Group(*panels))
    verdict = "all outcomes equal the in-process stream" if not mismatches else f"{mismatches} differ"
    console.print(f"[bold]{len(ids)} messages through Redis: {verdict}[/bold]")
    return 0 if not mismatches else 1
