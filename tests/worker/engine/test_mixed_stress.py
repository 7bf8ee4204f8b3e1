"""Stress: random mixes of valid messages, poison and dead producers under random read and claim budgets.

The worker runs as the product runs it (a `Worker` in burst mode on a real
redis-server). Poison is of every kind the checks know, plus squatted `E(M)`
keys and bad dispatch fields; dead producers went silent after 0-40 events (0:
they announced first). The invariants are the promise: every valid message
completes with langchain-core's own outcome and exactly the frames a clean run
makes (seqs 1..n, last one terminal); every poison message fails with its
reason and exactly one dead letter; every dead producer fails `idle_timeout` in
time; nothing is left pending.
"""

from __future__ import annotations

import random
import uuid

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from lcstream.streams.frames import FrameKind, MessageAssembler
from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import read_frames, read_outcome
from tests.helpers import in_process_oracle, run_burst
from tests.worker.engine.mixes import MAX_EVENT_BYTES, Planned, plan_mix, write_mix

IDLE_TIMEOUT_S = 1.0
# A dead producer is failed within this long after its last event: the idle timeout, plus an upkeep
# interval to notice it, plus the time a burst worker needs to reach it in the backlog.
IDLE_BOUND_S = IDLE_TIMEOUT_S + 4.0

budgets = st.fixed_dictionaries(
    {
        "read_count": st.integers(min_value=50, max_value=500),
        "claim_count": st.integers(min_value=5, max_value=50),
        "block_ms": st.sampled_from([20, 50, 100]),
        "max_open_messages": st.sampled_from([20, 100, 1000]),
    }
)


# No shrinking: a failing mix is reported with its seed and budgets, and shrinking one takes minutes.
@settings(
    max_examples=10,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(budget=budgets, seed=st.integers(min_value=0, max_value=2**32 - 1))
async def test_every_message_of_a_mix_reaches_exactly_its_outcome(
    real_redis: Redis, budget: dict[str, int], seed: int
) -> None:
    await real_redis.flushdb()
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:6]
    planned = plan_mix(
        run, rng, valid=rng.randint(60, 140), poisoned=rng.randint(20, 70), dead=rng.randint(5, 30)
    )
    keyspace = Keyspace()
    await write_mix(real_redis, planned, keyspace)

    await run_burst(real_redis, idle_timeout_s=IDLE_TIMEOUT_S, max_event_bytes=MAX_EVENT_BYTES, **budget)

    dead_letters: dict[str, list[dict[bytes, bytes]]] = {}
    for _, fields in await real_redis.xrange(keyspace.dead):
        dead_letters.setdefault(fields[b"m"].decode(), []).append(fields)
    for message in planned:
        await check(real_redis, message, dead_letters.get(message.message_id, []))
    assert (await real_redis.xpending(keyspace.dispatch(0), "workers"))["pending"] == 0


async def check(redis: Redis, message: Planned, dead: list[dict[bytes, bytes]]) -> None:
    outcome = await read_outcome(redis, message.message_id)
    frames = await read_frames(redis, message.message_id)
    where = f"{message.kind} {message.message_id} ({message.reason})"
    assert outcome is not None, f"{where}: no outcome"
    assert [f.seq for f in frames] == list(range(1, len(frames) + 1)), f"{where}: seqs not 1..n"
    if message.kind == "valid":
        expected = await in_process_oracle(message.events, message.message_id)
        assert (outcome.status, outcome.message) == ("completed", expected["output"]), where
        clean = MessageAssembler(message.message_id).feed_all(message.events)
        assert frames == clean, f"{where}: {len(frames)} frames, a clean run makes {len(clean)}"
        assert dead == [], where
        return
    assert outcome.error is not None, f"{where}: {outcome.status}"
    assert outcome.error["code"] == message.reason, f"{where}: failed {outcome.error['code']}"
    assert frames and frames[-1].kind is FrameKind.ERROR, f"{where}: last frame not an error"
    assert len(dead) == 1, f"{where}: {len(dead)} dead letters"
    assert dead[0][b"reason"].decode() == message.reason, where
    if message.kind == "dead":
        waited_s = (int(dead[0][b"t"]) - message.silent_since_ms) / 1000
        assert IDLE_TIMEOUT_S <= waited_s <= IDLE_BOUND_S, f"{where}: failed after {waited_s:.2f} s"
