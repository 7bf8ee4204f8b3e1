"""Preloaded workloads (backlog, tool calls, long messages): burst workers drain a snapshot."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from redis.asyncio import Redis

from lcstream.streams.keys import Keyspace
from tests.benchmarks.gate import StartGate
from tests.benchmarks.measure import RedisCounters
from tests.benchmarks.messages import Event
from tests.benchmarks.processes import Processes
from tests.benchmarks.results import Result
from tests.benchmarks.verify import count_outcomes, verify_outcomes
from tests.benchmarks.workers import WORKER_COUNT, start_workers, summarize
from tests.benchmarks.workloads import Preloaded
from tests.procfs import MachineCpu

DRAIN_TIMEOUT_S = 600.0


async def run_preloaded(
    workload: Preloaded,
    events: list[list[Event]],
    system: str,
    snapshot: Path,
    directory: Path,
    *,
    sample: int,
    settings: dict[str, str],
) -> Result:
    """Start `system`'s workers in burst mode on a fresh copy of `snapshot`; time them to the end."""
    message_ids = workload.message_ids()
    expected_events = sum(len(e) for e in events)
    result = Result(workload.name, system, workload.shape, events=expected_events, expected=len(message_ids))
    with Processes(directory) as processes:
        server = processes.redis(snapshot)
        redis = Redis.from_url(server.url)
        try:
            before = await RedisCounters.read(redis)
            stored = await _dataset_bytes(redis)  # the preloaded messages: E(M) and D(k)
            async with StartGate(redis) as gate:
                workers = start_workers(processes, system, server.url, burst=True, **settings)
                await gate.open(len(workers))
            released, machine = time.monotonic(), MachineCpu()
            for worker in workers:
                code = await asyncio.to_thread(worker.wait_exit, DRAIN_TIMEOUT_S)
                if code != 0:
                    raise RuntimeError(f"{worker.name} exited {code}: {worker.log_tail()}")
            result.wall_s = round(time.monotonic() - released, 3)
            result.extra["machine_cpu_busy"] = round(machine.busy_fraction(), 3)
            usage = (await RedisCounters.read(redis)).since(before)
            result.extra["redis_bytes_per_event"] = round(stored / expected_events)
            written = await _dataset_bytes(redis) - stored  # O(M) and R(M)
            result.extra["redis_bytes_per_event_out"] = round(written / expected_events)
            keyspace = Keyspace()
            result.completed = await count_outcomes(redis, [keyspace.message(m).result for m in message_ids])
            result.verified = await verify_outcomes(redis, message_ids, events, sample)
        finally:
            await redis.aclose()
    figures = summarize(workers)
    if figures.events != expected_events:
        result.notes.append(f"workers counted {figures.events} events of {expected_events}")
    result.loop_s = round(figures.loop_s, 3)
    result.events_per_s = round(expected_events / figures.loop_s) if figures.loop_s else None
    result.worker_cpu_us_per_event = round(figures.cpu_s * 1e6 / expected_events, 2)
    result.add_redis(usage, expected_events)
    if WORKER_COUNT[system] > 1:
        split = [int(w.stopped_line["events"]) for w in workers if w.stopped_line]
        result.extra["events_per_worker"] = split
        shares = " / ".join(f"{n:,} ({n / sum(split):.0%})" for n in split) if sum(split) else "none"
        result.notes.append(f"events per worker: {shares}")
    return result


async def _dataset_bytes(redis: Redis) -> int:
    """Redis's memory for data (`used_memory_dataset`: used memory less its own overhead)."""
    return int((await redis.info("memory"))["used_memory_dataset"])
