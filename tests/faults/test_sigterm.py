"""Acceptance: SIGTERM finishes what can finish within the grace period and hands the rest back at once.

Every worker here has a takeover time of 60 s, so a message a stopping worker
handed back can only move on quickly if the hand-back really marked it idle for
a peer: waiting out the takeover time would take four times longer than allowed.
"""

from __future__ import annotations

import asyncio
import random
import time

from redis.asyncio import Redis

from tests.faults.support import (
    DEAD,
    Gate,
    SpawnWorker,
    assert_all_match_oracle,
    lines_of,
    logged_at,
    message_events,
    messages_logged,
    pending_count,
    stream_message,
    wait_for_log,
)
from tests.helpers import all_outcomes, wait_for

TAKEOVER_AFTER_MS = 60_000


async def test_sigterm_hands_back_what_cannot_finish_and_a_peer_completes_it(
    fault_redis: Redis, spawn: SpawnWorker
) -> None:
    grace_s = 1.0
    rng = random.Random(3)
    events_by_id = {f"handback-{n}": message_events(f"handback-{n}", n, rng, tokens=100) for n in range(4)}
    a = spawn(
        "term-a", LCSTREAM_GRACE_PERIOD_S=str(grace_s), LCSTREAM_TAKEOVER_AFTER_MS=str(TAKEOVER_AFTER_MS)
    )
    await wait_for_log(a, "started")
    # About 8 s per message: far longer than the grace period.
    producers = asyncio.gather(
        *(stream_message(fault_redis, m, events, pace_s=0.08) for m, events in events_by_id.items())
    )
    await wait_for_log(a, "claimed", messages=set(events_by_id))
    b = spawn("term-b", LCSTREAM_TAKEOVER_AFTER_MS=str(TAKEOVER_AFTER_MS))
    await wait_for_log(b, "started")

    async def a_wrote_frames() -> bool:
        return all([await fault_redis.xlen(f"lcstream:{{0}}:{m}:out") >= 5 for m in events_by_id])

    await wait_for(a_wrote_frames, timeout_s=20, what="A to write frames of every message")
    terminated_at = time.monotonic()
    a.process.terminate()
    assert a.wait(timeout_s=grace_s + 5) == 0
    exited_at = time.monotonic()
    assert exited_at - terminated_at < grace_s + 3
    assert not await all_outcomes(fault_redis, list(events_by_id))  # nothing could finish in time
    (released,) = lines_of(a, "released")
    assert released["messages"] == len(events_by_id)
    assert logged_at(lines_of(a, "stopping")[0]) <= logged_at(released)
    assert not messages_logged(a, "completed")

    await producers
    await wait_for(
        lambda: all_outcomes(fault_redis, list(events_by_id)), timeout_s=15, what="B to complete them"
    )
    assert time.monotonic() - exited_at < 15  # not the 60 s takeover time
    taken = {line["message_id"]: line["deliveries"] for line in lines_of(b, "taken-over")}
    # Handed back, not failed: the peer's takeover brings the delivery count back to 1.
    assert taken == dict.fromkeys(events_by_id, 1)
    # At B's next upkeep (every second with this takeover time), not after 60 s.
    assert all(logged_at(line) - logged_at(released) < 3 for line in lines_of(b, "taken-over"))
    await wait_for_log(b, "completed", messages=set(events_by_id))
    await assert_all_match_oracle(fault_redis, events_by_id)
    assert await pending_count(fault_redis) == 0
    assert await fault_redis.xlen(DEAD) == 0
    assert b.terminate() == 0


async def test_sigterm_lets_messages_finish_within_the_grace_period(
    fault_redis: Redis, spawn: SpawnWorker
) -> None:
    grace_s = 10.0
    rng = random.Random(4)
    events_by_id = {f"finish-{n}": message_events(f"finish-{n}", n, rng, tokens=60) for n in range(4)}
    a = spawn(
        "term-a", LCSTREAM_GRACE_PERIOD_S=str(grace_s), LCSTREAM_TAKEOVER_AFTER_MS=str(TAKEOVER_AFTER_MS)
    )
    await wait_for_log(a, "started")
    # Each producer holds back its last few events until A was told to stop.
    gates = {m: Gate(at=len(events) - 4) for m, events in events_by_id.items()}
    producers = asyncio.gather(
        *(
            stream_message(fault_redis, m, events, pace_s=0.03, gate=gates[m], pace_after_gate_s=0.05)
            for m, events in events_by_id.items()
        )
    )
    await wait_for_log(a, "claimed", messages=set(events_by_id))
    await asyncio.gather(*(gate.reached.wait() for gate in gates.values()))
    terminated_at = time.monotonic()
    a.process.terminate()
    await wait_for_log(a, "stopping")
    assert not await all_outcomes(fault_redis, list(events_by_id))
    for gate in gates.values():
        gate.opened.set()
    await producers

    assert a.wait(timeout_s=grace_s + 5) == 0
    assert time.monotonic() - terminated_at < grace_s - 2  # it exits once they are done, not at the end
    stopping_at = logged_at(lines_of(a, "stopping")[0])
    completed = {line["message_id"]: logged_at(line) for line in lines_of(a, "completed")}
    assert set(completed) == set(events_by_id)
    assert all(at > stopping_at for at in completed.values())
    assert not lines_of(a, "released")
    stopped = lines_of(a, "stopped")[0]
    assert (stopped["completed"], stopped["lost_claims"]) == (len(events_by_id), 0)
    await assert_all_match_oracle(fault_redis, events_by_id)
    assert await pending_count(fault_redis) == 0
