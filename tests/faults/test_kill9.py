"""Acceptance: `kill -9` of workers holding open messages, again and again, while 60 messages stream.

Three worker processes share the consumer group. A chaos loop kills (SIGKILL) a
worker that holds pending dispatch entries, at least five times, and starts a
replacement under a new consumer name. Every message must still complete exactly
as langchain-core's in-process stream assembles it, with gap-free frames, and
nothing may stay pending. The takeover latency (kill to a peer's `taken-over`
line, per held message) is printed.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from tests.conftest import WorkerProcess
from tests.faults.support import (
    DEAD,
    SpawnWorker,
    assert_all_match_oracle,
    dispatch_messages,
    lines_of,
    logged_at,
    message_events,
    pending_count,
    pending_of,
    percentile,
    stream_message,
    wait_for_log,
)
from tests.helpers import all_outcomes, wait_for

MESSAGES = 60
START_EVERY_S = 0.4  # message i starts at i * 0.4 s: about 12 stream at once, for about 28 s
TAKEOVER_AFTER_MS = 1000
MIN_KILLS = 5
MAX_KILLS = 8

WORKER_ENV = {
    "LCSTREAM_TAKEOVER_AFTER_MS": str(TAKEOVER_AFTER_MS),
    # A message held by several victims in a row is taken over once per kill; this test is about
    # takeover, not the delivery limit (tests/worker/test_reliability.py covers that).
    "LCSTREAM_MAX_DELIVERIES": "20",
}


@dataclass
class Kill:
    """One `kill -9`: whom, when (unix s), and the dispatch entries it held then."""

    consumer: str
    at: float
    held: dict[bytes, str]  # entry id -> message id


async def test_kill9_of_busy_workers_loses_nothing(
    fault_redis: Redis, spawn: SpawnWorker, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(9)
    names = iter(f"w{n}" for n in range(1, 100))
    live: dict[str, WorkerProcess] = {}
    everyone: list[WorkerProcess] = []

    def start_worker() -> WorkerProcess:
        name = next(names)
        worker = spawn(name, **WORKER_ENV)
        live[name] = worker
        everyone.append(worker)
        return worker

    for _ in range(3):
        start_worker()
    for worker in list(live.values()):
        await wait_for_log(worker, "started")

    events_by_id = {f"chaos-{n}": message_events(f"chaos-{n}", n, rng) for n in range(MESSAGES)}

    async def produce(n: int, message_id: str) -> None:
        await asyncio.sleep(n * START_EVERY_S)  # staggered starts: the workload's shape
        await stream_message(
            fault_redis, message_id, events_by_id[message_id], pace_s=rng.uniform(0.03, 0.05)
        )

    producers = asyncio.gather(*(produce(n, m) for n, m in enumerate(events_by_id)))
    kills: list[Kill] = []

    async def chaos() -> None:
        while not producers.done() and len(kills) < MAX_KILLS:
            await asyncio.sleep(rng.uniform(2.0, 3.0))  # the chaos's pace, not a synchronization
            holders = sorted([name for name in live if await pending_of(fault_redis, name)])
            if not holders:
                continue
            victim = rng.choice(holders)
            killed_at = time.time()
            live.pop(victim).kill()  # SIGKILL, then reap it
            # Dead now, so its pending list is what it held: a peer can't take an entry for ~1 s.
            held = await pending_of(fault_redis, victim)
            by_entry = await dispatch_messages(fault_redis)
            kills.append(Kill(victim, killed_at, {entry_id: by_entry[entry_id] for entry_id in held}))
            start_worker()

    await asyncio.gather(producers, chaos())
    await wait_for(
        lambda: all_outcomes(fault_redis, list(events_by_id)), timeout_s=30, what="all 60 outcomes"
    )

    busy_kills = [kill for kill in kills if kill.held]
    assert len(busy_kills) >= MIN_KILLS, f"only {len(busy_kills)} kills hit a worker holding messages"
    takeovers = [line for worker in everyone for line in lines_of(worker, "taken-over")]
    latencies: list[float] = []
    for kill in busy_kills:
        for entry_id, message_id in kill.held.items():
            after = [
                logged_at(line)
                for line in takeovers
                if line["entry_id"] == entry_id.decode() and logged_at(line) >= kill.at
            ]
            assert after, f"{message_id} (held by killed {kill.consumer}) was never taken over"
            assert all(
                line["message_id"] == message_id
                for line in takeovers
                if line["entry_id"] == entry_id.decode()
            )
            latencies.append(min(after) - kill.at)

    await assert_all_match_oracle(fault_redis, events_by_id)
    assert await pending_count(fault_redis) == 0
    assert await fault_redis.xlen(DEAD) == 0
    for worker in list(live.values()):
        assert worker.terminate() == 0
    # Exactly once: no message was completed by two workers (a rebuild finds R(M) and only acks).
    completed = [line["message_id"] for worker in everyone for line in lines_of(worker, "completed")]
    assert len(completed) == len(set(completed))
    assert set(completed) <= set(events_by_id)

    with capsys.disabled():
        print(
            f"\nkill -9: {len(kills)} kills ({len(busy_kills)} of workers holding messages, "
            f"{sum(len(k.held) for k in busy_kills)} held messages), {len(takeovers)} takeovers; "
            f"takeover latency (kill -> peer's taken-over) p50 {percentile(latencies, 0.5):.3f} s, "
            f"max {max(latencies):.3f} s (takeover time {TAKEOVER_AFTER_MS} ms)"
        )
