"""The naive reference worker: what you'd write in an afternoon.

Same keyspace, frames and outcome as lcstream (so the benchmark can check it does
the real work), none of the engineering: a coroutine per message doing its own
blocking `XREAD` on `E(M)` (one connection per blocked read), stdlib `json`,
projection consumers woken per event, and two round trips (`XADD` to `O(M)`,
then `PUBLISH` to `L(M)`) per frame; `SET R(M)` and `XACK` at the end. No
validation, no leases, no fenced commit, no retention.

    python -m tests.benchmarks.naive_worker --redis-url redis://127.0.0.1:PORT/0 [--burst]

It logs `started` and `stopped` JSON lines to stderr, like `lcstream worker`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections.abc import AsyncIterable
from dataclasses import asdict, dataclass
from typing import Any

from langchain_core.language_models.chat_model_stream import AsyncChatModelStream
from langchain_core.messages import message_to_dict
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from lcstream.streams.keys import Keyspace, MessageKeys
from tests.benchmarks.jsonlog import log

GROUP = "workers"
TERMINAL = ("message-finish", "error")
Frame = tuple[str, Any] | None  # (kind, data); None closes the writer


@dataclass
class Stats:
    events: int = 0
    frames: int = 0
    completed: int = 0
    failed: int = 0


class NaiveWorker:
    def __init__(self, redis: Redis, consumer: str, max_open: int) -> None:
        self.redis = redis
        self.consumer = consumer
        self.max_open = max_open
        self.keyspace = Keyspace()
        self.stats = Stats()
        self.stopping = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self, burst: bool) -> None:
        dispatch = self.keyspace.dispatch(0)
        try:
            await self.redis.xgroup_create(dispatch, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        log("started", consumer=self.consumer, burst=burst)
        started = time.monotonic()
        while not self.stopping.is_set():
            if len(self.tasks) >= self.max_open:
                await asyncio.wait(self.tasks, timeout=0.1, return_when=asyncio.FIRST_COMPLETED)
                continue
            count = self.max_open - len(self.tasks)
            reply = await self.redis.xreadgroup(GROUP, self.consumer, {dispatch: ">"}, count=count, block=100)
            for _, entries in reply:
                for entry_id, fields in entries:
                    self.start(entry_id, fields)
            if burst and not reply and not self.tasks:
                break
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        elapsed_s = time.monotonic() - started
        events_per_s = round(self.stats.events / elapsed_s) if elapsed_s else 0
        log("stopped", elapsed_s=round(elapsed_s, 3), events_per_s=events_per_s, **asdict(self.stats))

    def start(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        message_id = fields[b"m"].decode()
        namespace = json.loads(fields[b"ns"]) if b"ns" in fields else None
        node = fields[b"node"].decode() if b"node" in fields else None
        task = asyncio.create_task(self.handle(message_id, entry_id, namespace, node))
        self.tasks.add(task)
        task.add_done_callback(self.reap)

    def reap(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.stats.failed += 1
            log("crashed", error=repr(task.exception()))

    async def handle(
        self, message_id: str, entry_id: bytes, namespace: list[str] | None, node: str | None
    ) -> None:
        keys = self.keyspace.message(message_id)
        stream = AsyncChatModelStream(message_id=message_id, namespace=namespace, node=node)
        queue: asyncio.Queue[Frame] = asyncio.Queue()
        writer = asyncio.create_task(self.write_frames(keys, queue))
        pumps = [
            asyncio.create_task(pump(stream.text, "text", queue)),
            asyncio.create_task(pump(stream.reasoning, "reasoning", queue)),
            asyncio.create_task(pump(stream.tool_calls, "tool_call_chunk", queue)),
        ]
        try:
            last_id: bytes | str = "0"
            terminal: dict[str, Any] | None = None
            while terminal is None:
                reply = await self.redis.xread({keys.events: last_id}, block=1000)
                for _, entries in reply:
                    for entry, fields in entries:
                        last_id = entry
                        event = json.loads(fields[b"e"])
                        self.stats.events += 1
                        if event["event"] == "message-start":
                            start = {"message_id": message_id, "namespace": namespace or [], "node": node}
                            queue.put_nowait(("start", {**start, "metadata": event.get("metadata")}))
                        stream.dispatch(event)
                        if event["event"] in TERMINAL:
                            terminal = event
                            break
            assert terminal is not None
            if terminal["event"] == "error" and not stream.done:
                stream.fail(RuntimeError(terminal["message"]))
            await asyncio.gather(*pumps)
            if terminal["event"] == "error":
                error = {"message": terminal["message"], "code": terminal.get("code") or "model_error"}
                outcome: dict[str, Any] = {"status": "failed", "error": error}
                queue.put_nowait(("error", error))
            else:
                message = message_to_dict(await stream.output)
                outcome = {"status": "completed", "message": message}
                queue.put_nowait(("output", message))
            queue.put_nowait(None)
            await writer
            await self.redis.set(keys.result, json.dumps(outcome))
            await self.redis.xack(keys.dispatch, GROUP, entry_id)
            self.stats.completed += 1
        finally:
            for task in (*pumps, writer):
                task.cancel()
            await asyncio.gather(*pumps, writer, return_exceptions=True)

    async def write_frames(self, keys: MessageKeys, queue: asyncio.Queue[Frame]) -> None:
        seq = 0
        while (frame := await queue.get()) is not None:
            seq += 1
            kind, data = frame
            await self.redis.xadd(keys.out, {"f": json.dumps({"kind": kind, "data": data})}, id=f"0-{seq}")
            await self.redis.publish(keys.live, json.dumps({"seq": seq, "kind": kind, "data": data}))
            self.stats.frames += 1


async def pump(projection: AsyncIterable[Any], kind: str, queue: asyncio.Queue[Frame]) -> None:
    """Forward what one projection yields, as frames, until the stream ends."""
    try:
        async for delta in projection:
            queue.put_nowait((kind, delta))
    except RuntimeError:
        pass  # a failed stream raises after its deltas


async def main(redis_url: str, consumer: str, burst: bool, max_open: int) -> None:
    redis = Redis.from_url(redis_url)
    worker = NaiveWorker(redis, consumer, max_open)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.stopping.set)
    try:
        await worker.run(burst)
    finally:
        await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--consumer", default="naive")
    parser.add_argument("--burst", action="store_true", help="exit once nothing is open or waiting")
    parser.add_argument("--max-open", type=int, default=2000, help="messages held at once")
    args = parser.parse_args()
    asyncio.run(main(args.redis_url, args.consumer, args.burst, args.max_open))
