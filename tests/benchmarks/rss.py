"""Worker memory with many open messages: events of `messages` messages, none finished yet."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from lcstream.streams.events import encode_event, now_ms
from lcstream.streams.keys import Keyspace
from tests import procfs
from tests.benchmarks.measure import RedisCounters
from tests.benchmarks.messages import Event, text_message_events
from tests.benchmarks.preload import publish_all
from tests.benchmarks.processes import Processes
from tests.benchmarks.results import Result
from tests.benchmarks.verify import count_outcomes, verify_outcomes
from tests.benchmarks.waiting import poll_until
from tests.benchmarks.workers import start_workers, summarize
from tests.benchmarks.workloads import OpenMessages

TIMEOUT_S = 900.0
ENDING_EVENTS = 2  # content-block-finish, message-finish


async def run_rss(
    workload: OpenMessages, system: str, directory: Path, *, sample: int, settings: dict[str, str]
) -> Result:
    """Publish every message but its end, wait until the worker consumed all, read its RSS, then end them."""
    ids = [f"open-{n}" for n in range(workload.messages)]
    texts = [[f"m{n}t{i} " for i in range(workload.tokens)] for n in range(workload.messages)]
    events = [text_message_events(m, t) for m, t in zip(ids, texts, strict=True)]
    shape = f"{workload.messages} open messages x {workload.tokens} tokens"
    result = Result(workload.name, system, shape, events=sum(map(len, events)), expected=len(ids))
    keyspace = Keyspace()
    with Processes(directory) as processes:
        server = processes.redis()
        redis = Redis.from_url(server.url)
        try:
            held = {
                "LCSTREAM_MAX_OPEN_MESSAGES": str(max(1000, 2 * workload.messages)),
                "LCSTREAM_IDLE_TIMEOUT_S": "3600",
            }
            (worker,) = start_workers(processes, system, server.url, burst=False, **{**settings, **held})
            await asyncio.to_thread(worker.wait_started, 120)
            idle_kb = worker.started_memory_kb["VmRSS"]
            before = await RedisCounters.read(redis)
            await publish_all(redis, [e[:-ENDING_EVENTS] for e in events])
            await _wait_consumed(redis, ids, [t[-1] for t in texts])
            memory = procfs.memory_kb(worker.pid)
            result.rss_mb = round(memory["VmRSS"] / 1024, 1)
            result.rss_per_open_message_kb = round((memory["VmRSS"] - idle_kb) / workload.messages, 1)
            result.extra.update(
                idle_rss_mb=round(idle_kb / 1024, 1), peak_rss_mb=round(memory["VmHWM"] / 1024, 1)
            )
            await _end_all(redis, keyspace, ids, events)
            result_keys = [keyspace.message(m).result for m in ids]

            async def all_ended() -> bool:
                return await count_outcomes(redis, result_keys) == len(ids)

            await poll_until(all_ended, timeout_s=TIMEOUT_S, interval_s=0.2, what="every open message to end")
            result.completed = len(ids)
            await asyncio.to_thread(worker.stop, 60)
            usage = (await RedisCounters.read(redis)).since(before)
            result.verified = await verify_outcomes(redis, ids, events, sample)
        finally:
            await redis.aclose()
    figures = summarize([worker])
    result.worker_cpu_us_per_event = round(figures.cpu_s * 1e6 / result.events, 2)
    result.add_redis(usage, result.events)
    return result


async def _wait_consumed(redis: Redis, ids: list[str], last_texts: list[str]) -> None:
    """Until each message's last frame so far carries its last token: the worker holds every event."""
    waiting = dict(zip(ids, last_texts, strict=True))

    async def consumed() -> bool:
        for message_id, last_text in list(waiting.items()):
            tail = await redis.xrevrange(Keyspace().message(message_id).out, count=1)
            if tail and last_text.encode() in tail[0][1][b"f"]:
                del waiting[message_id]
            else:
                return False
        return True

    await poll_until(consumed, timeout_s=TIMEOUT_S, interval_s=0.2, what="the worker to consume every event")


async def _end_all(redis: Redis, keyspace: Keyspace, ids: list[str], events: list[list[Event]]) -> None:
    """Write each message's last two events, with the explicit ids that follow what it has."""
    pipe = redis.pipeline(transaction=False)
    for message_id, message_events in zip(ids, events, strict=True):
        key = keyspace.message(message_id).events
        for seq in range(len(message_events) - ENDING_EVENTS + 1, len(message_events) + 1):
            fields = encode_event(message_events[seq - 1], time_ms=now_ms())
            pipe.xadd(key, fields, id=f"0-{seq}", nomkstream=True)  # type: ignore[arg-type]
    await pipe.execute()
