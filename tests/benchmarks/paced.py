"""Paced live traffic: a generator writes tokens on schedule while workers run and a subscriber listens."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from redis.asyncio import Redis

from lcstream.streams.keys import Keyspace
from tests.benchmarks.measure import RedisCounters
from tests.benchmarks.processes import LoggedProcess, ProcessError, Processes
from tests.benchmarks.results import Latency, Result
from tests.benchmarks.verify import count_outcomes, verify_stored
from tests.benchmarks.workers import start_workers, summarize
from tests.benchmarks.workloads import Paced
from tests.procfs import MachineCpu

START_TIMEOUT_S = 120.0


def _module(name: str, redis_url: str, *args: object) -> list[str]:
    return [sys.executable, "-m", f"tests.benchmarks.{name}", "--redis-url", redis_url, *map(str, args)]


async def run_paced(
    workload: Paced, system: str, directory: Path, *, sample: int, settings: dict[str, str]
) -> Result:
    """Workers (live), then the subscriber, then the generator; wait for the end or the drain deadline."""
    result = Result(workload.name, system, workload.shape, events=0, expected=workload.messages)
    result.target_events_per_s = workload.target_events_per_s
    with Processes(directory) as processes:
        server = processes.redis()
        redis = Redis.from_url(server.url)
        try:
            workers = start_workers(processes, system, server.url, burst=False, **settings)
            for worker in workers:
                await asyncio.to_thread(worker.wait_started, START_TIMEOUT_S)
            subscriber = processes.start(
                "subscriber",
                _module(
                    "subscriber", server.url, "--messages", workload.messages,
                    "--timeout-s", START_TIMEOUT_S + workload.duration_s + workload.drain_s,
                ),
            )  # fmt: skip
            await asyncio.to_thread(subscriber.wait_started, START_TIMEOUT_S)
            before = await RedisCounters.read(redis)
            cpu_before_s = sum(worker.cpu_s() for worker in workers)
            generator = processes.start(
                "generator",
                _module(
                    "generator", server.url, "--messages", workload.messages,
                    "--tokens-per-s", workload.tokens_per_s, "--duration-s", workload.duration_s,
                ),
            )  # fmt: skip
            started, machine = time.monotonic(), MachineCpu()
            await _expect_exit(generator, START_TIMEOUT_S + 3 * workload.duration_s)
            result.extra["machine_cpu_busy"] = round(machine.busy_fraction(), 3)
            await _wait_drained(subscriber, workload, result)
            result.wall_s = round(time.monotonic() - started, 3)
            keyspace = Keyspace()
            result_keys = [keyspace.message(m).result for m in workload.message_ids()]
            result.completed = await count_outcomes(redis, result_keys)
            for worker in workers:
                await asyncio.to_thread(worker.stop, 60)
            usage = (await RedisCounters.read(redis)).since(before)
            result.verified = await verify_stored(redis, workload.message_ids(), sample)
        finally:
            await redis.aclose()
    figures = summarize(workers)
    offered = generator.stopped_line or {}
    result.events = int(offered.get("events", 0))
    result.events_per_s = offered.get("achieved_events_per_s")
    result.extra["generator"] = offered
    result.extra["worker_events"] = figures.events
    if figures.events:
        result.worker_cpu_us_per_event = round((figures.cpu_s - cpu_before_s) * 1e6 / figures.events, 2)
    result.add_redis(usage, result.events)
    listened = subscriber.stopped_line or {}
    result.extra["subscriber"] = listened
    if listened.get("samples"):
        result.latency = Latency(
            p50_ms=listened["p50_ms"], p99_ms=listened["p99_ms"], p999_ms=listened["p999_ms"],
            max_ms=listened["max_ms"], samples=listened["samples"],
        )  # fmt: skip
    if offered.get("lag_max_ms", 0) > 50:
        result.notes.append(f"generator fell behind its schedule by up to {offered['lag_max_ms']:.0f} ms")
    if offered.get("errors"):
        result.notes.append(f"{offered['errors']} generator writes refused: {offered['first_error']}")
    return result


async def _expect_exit(process: LoggedProcess, timeout_s: float) -> None:
    code = await asyncio.to_thread(process.wait_exit, timeout_s)
    if code != 0:
        raise ProcessError(f"{process.name} exited {code}: {process.log_tail()}")


async def _wait_drained(subscriber: LoggedProcess, workload: Paced, result: Result) -> None:
    """Give the workers `drain_s` after the generator's end to deliver every terminal frame."""
    try:
        await asyncio.to_thread(subscriber.wait_exit, workload.drain_s)
    except ProcessError:
        await asyncio.to_thread(subscriber.stop, 10)
        seen = (subscriber.stopped_line or {}).get("terminal", 0)
        result.notes.append(
            f"behind: {seen}/{workload.messages} messages ended {workload.drain_s:g} s after the last token"
        )
