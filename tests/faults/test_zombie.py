"""Acceptance: a worker frozen (SIGSTOP) past the takeover time comes back as a zombie and writes nothing.

Worker A holds three slowly streaming messages and is stopped; worker B takes
them over, the producers finish, B completes them; then A continues. A must
notice it lost the claims (`claim-lost`) and write no frame, outcome, notice or
ack: `O(M)` stays exactly the oracle's frames 1..n and each message gets exactly
one terminal notice.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections import defaultdict

from redis.asyncio import Redis

from tests.faults.support import (
    DEAD,
    NOTICES,
    Gate,
    SpawnWorker,
    assert_all_match_oracle,
    lines_of,
    messages_logged,
    notices_until_now,
    pending_count,
    stopped_stats,
    stream_message,
    wait_for_log,
)
from tests.faults.support import message_events as make_events
from tests.helpers import all_outcomes, wait_for

ENV = {"LCSTREAM_TAKEOVER_AFTER_MS": "1000"}


async def test_frozen_worker_comes_back_as_a_zombie_and_writes_nothing(
    fault_redis: Redis, spawn: SpawnWorker
) -> None:
    rng = random.Random(2)
    events_by_id = {f"zombie-{n}": make_events(f"zombie-{n}", n, rng, tokens=60) for n in range(3)}
    pubsub = fault_redis.pubsub()
    await pubsub.subscribe(NOTICES)

    a = spawn("zombie-a", **ENV)
    await wait_for_log(a, "started")
    # Each producer streams 25 events, then waits until B has taken its message over.
    gates = {m: Gate(at=25) for m in events_by_id}
    producers = asyncio.gather(
        *(
            stream_message(fault_redis, m, events, pace_s=0.05, gate=gates[m], pace_after_gate_s=0.01)
            for m, events in events_by_id.items()
        )
    )
    await wait_for_log(a, "claimed", messages=set(events_by_id))
    b = spawn("zombie-b", **ENV)
    await wait_for_log(b, "started")

    async def a_wrote_frames() -> bool:
        return all([await fault_redis.xlen(f"lcstream:{{0}}:{m}:out") >= 10 for m in events_by_id])

    await wait_for(a_wrote_frames, timeout_s=20, what="A to write frames of every message")
    os.kill(a.process.pid, signal.SIGSTOP)
    try:
        await wait_for_log(b, "taken-over", messages=set(events_by_id), timeout_s=15)
        assert not await all_outcomes(fault_redis, list(events_by_id))  # the producers are still held
        for gate in gates.values():
            gate.opened.set()
        await producers
        await wait_for(lambda: all_outcomes(fault_redis, list(events_by_id)), timeout_s=20, what="outcomes")
        await wait_for_log(b, "completed", messages=set(events_by_id))
    finally:
        os.kill(a.process.pid, signal.SIGCONT)

    # A wakes up with stale reads and renewals due: every claim must come back lost.
    await wait_for_log(a, "claim-lost", messages=set(events_by_id), timeout_s=15)
    assert a.terminate() == 0
    assert b.terminate() == 0

    for verb in ("completed", "failed", "dead-lettered", "already-committed"):
        assert not messages_logged(a, verb) & set(events_by_id), f"A logged {verb!r} after losing its claims"
    stats_a = stopped_stats(a)
    assert (stats_a["completed"], stats_a["failed"], stats_a["lost_claims"]) == (0, 0, 3)
    stats_b = stopped_stats(b)
    assert (stats_b["completed"], stats_b["taken_over"], stats_b["lost_claims"]) == (3, 3, 0)
    taken = {line["message_id"]: line["deliveries"] for line in lines_of(b, "taken-over")}
    assert taken == dict.fromkeys(events_by_id, 2)

    await assert_all_match_oracle(fault_redis, events_by_id)
    assert await pending_count(fault_redis) == 0
    assert await fault_redis.xlen(DEAD) == 0

    statuses: dict[str, list[str]] = defaultdict(list)
    for notice in await notices_until_now(pubsub, b"after-both-workers-exited"):
        statuses[notice["message_id"]].append(notice["status"])
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    assert statuses == {m: ["started", "completed"] for m in events_by_id}
