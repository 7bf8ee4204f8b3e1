"""The ceilings: `AsyncChatModelStream.dispatch()` alone, in-process, and Redis itself (`redis-benchmark`)."""

from __future__ import annotations

import asyncio
import gc
import re
import shutil
import subprocess
import time

from langchain_core.language_models.chat_model_stream import AsyncChatModelStream
from redis.asyncio import Redis

from tests.benchmarks.measure import RedisCounters
from tests.benchmarks.messages import Event
from tests.benchmarks.processes import Processes
from tests.benchmarks.results import CEILING, Result
from tests.benchmarks.workloads import Preloaded

ROUNDS = 3  # the best of a few passes: the machine is shared


async def dispatch_ceiling(workload: Preloaded, events: list[list[Event]]) -> Result:
    """Events/s of feeding every message's events to a fresh `AsyncChatModelStream`, in-process."""
    total = sum(len(e) for e in events)
    best_s, best_cpu_s = float("inf"), float("inf")
    for _ in range(ROUNDS):
        gc.collect()
        cpu_started, started = time.process_time(), time.perf_counter()
        for message_id, message_events in zip(workload.message_ids(), events, strict=True):
            stream = AsyncChatModelStream(message_id=message_id)
            for event in message_events:
                stream.dispatch(event)
        best_s = min(best_s, time.perf_counter() - started)
        best_cpu_s = min(best_cpu_s, time.process_time() - cpu_started)
        await asyncio.sleep(0)  # a pass is one long synchronous stretch; let the loop breathe between them
    return Result(
        workload.name, CEILING, workload.shape, events=total,
        events_per_s=round(total / best_s), loop_s=round(best_s, 3),
        worker_cpu_us_per_event=round(best_cpu_s * 1e6 / total, 2),
        notes=[f"best of {ROUNDS} passes, no Redis"],
    )  # fmt: skip


REDIS_CASES = (("XADD", 1), ("XADD", 50), ("PUBLISH", 1), ("PUBLISH", 50))
# `--csv` ends each line with rps and six latency figures; the test name before them quotes the
# payload's own quotes badly, so read from the end.
_RPS = re.compile(r'"([0-9.]+)"(?:,"[0-9.]+"){6}\s*$', re.MULTILINE)


async def redis_ceiling(
    processes: Processes, command: str, pipeline: int, requests: int, payload: bytes
) -> Result:
    """`redis-benchmark` (50 clients, `pipeline` requests in flight each) of XADD, or PUBLISH with no
    subscriber, of one typical event, on a fresh redis-server."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        raise FileNotFoundError("redis-benchmark is not on the PATH (Debian: apt-get install redis-tools)")
    scaled = requests * (5 if pipeline > 1 else 1)  # pipelined runs are too short to time otherwise
    args = [binary, "-p", "0", "-n", str(scaled), "-P", str(pipeline), "-q", "--csv", command]
    args += (
        ["bench:events", "*", "e", payload.decode()]
        if command == "XADD"
        else ["bench:live", payload.decode()]
    )
    shape = f"{scaled:,} requests, 50 clients, {len(payload)}-byte event"
    result = Result("redis", f"redis-benchmark {command} -P {pipeline}", shape, events=scaled)
    server = processes.redis()
    args[2] = str(server.port)
    redis = Redis.from_url(server.url)
    try:
        before = await RedisCounters.read(redis)
        completed = await asyncio.to_thread(subprocess.run, args, capture_output=True, text=True, timeout=300)
        usage = (await RedisCounters.read(redis)).since(before)
    finally:
        await redis.aclose()
    rps = _RPS.search(completed.stdout)
    if completed.returncode != 0 or rps is None:
        raise RuntimeError(f"redis-benchmark failed: {(completed.stderr or completed.stdout)[-300:]}")
    result.events_per_s = round(float(rps.group(1)))
    result.add_redis(usage, scaled)
    return result
