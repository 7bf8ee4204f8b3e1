"""What the fault tests share: a realistic workload, paced producers, worker logs, Redis on a fixed port."""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from langchain_core.language_models._compat_bridge import chunks_to_events
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from lcstream.streams.cluster import RedisClient
from lcstream.streams.keys import Keyspace
from lcstream.streams.producer import StreamProducer
from lcstream.streams.reader import read_outcome
from lcstream.worker.demo.models import reasoning_chunks, tool_call_chunks, usage_chunk
from tests.conftest import RedisServer, WorkerProcess, start_redis_server
from tests.helpers import assert_frames_match, in_process_oracle, wait_for

DISPATCH = "lcstream:{0}:dispatch"
GROUP = "workers"
NOTICES = "lcstream:messages"
DEAD = "lcstream:dead"

SpawnWorker = Callable[..., WorkerProcess]


# -- workload ------------------------------------------------------------------


def message_events(message_id: str, n: int, rng: random.Random, *, tokens: int | None = None) -> list[Any]:
    """One message's protocol events, from `AIMessageChunk`s through langchain-core's `chunks_to_events`.

    60-120 text tokens; every third message reasons first, every fourth calls a
    tool, every seventh makes two parallel tool calls whose argument pieces interleave.
    """
    chunks: list[AIMessageChunk] = []
    if n % 3 == 0:
        chunks += reasoning_chunks(f"Message {n} needs a careful answer, so plan it before writing it out.")
    count = tokens if tokens is not None else rng.randint(60, 120)
    chunks += [AIMessageChunk(content=f"m{n}-tok{i} ") for i in range(count)]
    if n % 4 == 1:
        chunks += tool_call_chunks("search", f"call_{n}", json.dumps({"query": f"q{n}", "page": n}), pieces=6)
    if n % 7 == 2:
        first = tool_call_chunks("get_weather", f"call_{n}a", '{"city": "Paris"}', index=0, pieces=3)
        second = tool_call_chunks("get_time", f"call_{n}b", '{"tz": "Europe/Paris"}', index=1, pieces=3)
        for a, b in zip(first, second, strict=False):
            chunks += [a, b]
    chunks.append(usage_chunk(10 + n, count))
    generations = iter([ChatGenerationChunk(message=chunk) for chunk in chunks])
    return [dict(event) for event in chunks_to_events(generations, message_id=message_id)]


@dataclass
class Gate:
    """Holds a producer before event `at` until `opened` is set; `reached` is set when it gets there."""

    at: int
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    reached: asyncio.Event = field(default_factory=asyncio.Event)


async def stream_message(
    client: RedisClient,
    message_id: str,
    events: Sequence[dict[str, Any]],
    *,
    pace_s: float,
    keyspace: Keyspace | None = None,
    gate: Gate | None = None,
    pace_after_gate_s: float | None = None,
    sent: list[int] | None = None,
) -> None:
    """Write `events` the way a live model does: one at a time, `pace_s` apart (the workload's pace).

    `sent[0]` counts the events handed to the producer so far. Raises whatever the producer raises.
    """
    pace = pace_s
    async with StreamProducer(client, message_id, keyspace=keyspace) as producer:
        for i, event in enumerate(events):
            if gate is not None and i == gate.at:
                gate.reached.set()
                await gate.opened.wait()
                pace = pace_s if pace_after_gate_s is None else pace_after_gate_s
            if i:
                await asyncio.sleep(pace)
            await producer.send(event)
            if sent is not None:
                sent[0] += 1


# -- worker logs -----------------------------------------------------------------


def log_lines(worker: WorkerProcess) -> list[dict[str, Any]]:
    """A worker's JSON log lines so far; a line cut short by `kill -9` is skipped."""
    lines: list[dict[str, Any]] = []
    for raw in worker.log_path.read_text().splitlines():
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
    return lines


def lines_of(worker: WorkerProcess, event: str) -> list[dict[str, Any]]:
    """The log lines with this event verb."""
    return [line for line in log_lines(worker) if line.get("event") == event]


def messages_logged(worker: WorkerProcess, event: str) -> set[str]:
    """The message ids of the log lines with this verb."""
    return {line["message_id"] for line in lines_of(worker, event) if "message_id" in line}


def logged_at(line: dict[str, Any]) -> float:
    """A log line's timestamp as unix seconds."""
    return datetime.fromisoformat(line["timestamp"]).timestamp()


async def wait_for_log(
    worker: WorkerProcess,
    event: str,
    *,
    messages: set[str] | None = None,
    timeout_s: float = 20.0,
) -> None:
    """Wait until the worker logged `event` (for every one of `messages`, when given)."""

    async def logged() -> bool:
        if worker.process.poll() is not None and event not in {"stopped", "released"}:
            raise AssertionError(f"{worker.log_path.name} exited ({worker.process.returncode})")
        if messages is None:
            return bool(lines_of(worker, event))
        return messages <= messages_logged(worker, event)

    await wait_for(logged, timeout_s=timeout_s, what=f"{worker.log_path.name} to log {event!r}")


def stopped_stats(worker: WorkerProcess) -> dict[str, Any]:
    """The counters of the worker's `stopped` line."""
    (stopped,) = lines_of(worker, "stopped")
    return stopped


# -- what Redis holds --------------------------------------------------------------


async def pending_count(client: Redis) -> int:
    """Entries of `D(0)` delivered to a worker and not acked."""
    summary = await client.xpending(DISPATCH, GROUP)
    return int(summary["pending"])


async def pending_of(client: Redis, consumer: str) -> list[bytes]:
    """Entry ids of `D(0)` pending for one consumer."""
    rows = await client.xpending_range(DISPATCH, GROUP, min="-", max="+", count=10_000, consumername=consumer)
    return [bytes(row["message_id"]) for row in rows]


async def dispatch_messages(client: Redis) -> dict[bytes, str]:
    """Dispatch entry id -> message id, for every entry of `D(0)`."""
    return {bytes(entry_id): fields[b"m"].decode() for entry_id, fields in await client.xrange(DISPATCH)}


async def assert_all_match_oracle(
    client: RedisClient, events_by_id: dict[str, list[Any]], keyspace: Keyspace | None = None
) -> None:
    """Every message completed with the in-process stream's output; O(M) is 1..n with its deltas."""
    for message_id, events in events_by_id.items():
        expected = await in_process_oracle(events, message_id)
        outcome = await read_outcome(client, message_id, keyspace)
        assert outcome is not None, f"{message_id} has no outcome"
        assert outcome.status == "completed", f"{message_id}: {outcome}"
        assert outcome.message == expected["output"], message_id
        await assert_frames_match(client, message_id, expected, keyspace)


async def notices_until_now(pubsub: PubSub, token: bytes) -> list[dict[str, Any]]:
    """Every notice received before a `PING token` on the subscription: Redis answers in order."""
    await pubsub.ping(token)
    notices: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while True:
        message = await pubsub.get_message(timeout=0.2)
        if message is not None and message["type"] == "pong" and message["data"] == token:
            return notices
        if message is not None and message["type"] == "message":
            notices.append(json.loads(message["data"]))
        if time.monotonic() > deadline:
            raise AssertionError("no answer to the subscription's PING")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# -- a redis-server that comes back on the same port --------------------------------


def start_redis_at(directory: Path, port: int, *extra: str) -> RedisServer:
    """Start redis-server on `port` (a restart must come back on the old one); wait for PING."""
    return start_redis_server(directory, *extra, port=port)


def worker_base_env(url: str) -> dict[str, str]:
    """Environment of a worker subprocess on `url`: no inherited LCSTREAM_*, JSON logs, short blocks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LCSTREAM_")}
    env.update(LCSTREAM_REDIS_URL=url, LCSTREAM_BLOCK_MS="100", LCSTREAM_LOG_FORMAT="json")
    return env
