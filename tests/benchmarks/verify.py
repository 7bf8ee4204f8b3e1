"""Proof that a system did the real work: stored outcomes equal langchain-core's in-process stream."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from lcstream.streams.reader import read_events, read_outcome
from tests.benchmarks.messages import Event
from tests.helpers import in_process_oracle


class WrongOutcomeError(AssertionError):
    """A stored outcome differs from the in-process oracle's."""


def sample_indexes(count: int, sample: int) -> list[int]:
    """`sample` indexes spread over `range(count)`, first and last included."""
    if count <= sample:
        return list(range(count))
    step = (count - 1) / (sample - 1)
    return sorted({round(i * step) for i in range(sample)})


async def verify_outcomes(
    redis: Redis, message_ids: Sequence[str], events: Sequence[Sequence[Event]], sample: int
) -> int:
    """Compare `R(M)` with the oracle for a spread sample; return how many matched (raise on a mismatch)."""
    checked = 0
    for i in sample_indexes(len(message_ids), sample):
        outcome = await read_outcome(redis, message_ids[i])
        expected = await in_process_oracle(events[i], message_ids[i])
        if outcome is None:
            raise WrongOutcomeError(f"{message_ids[i]} has no outcome")
        if (outcome.status, outcome.message) != ("completed", expected["output"]):
            raise WrongOutcomeError(f"{message_ids[i]}: {outcome} != oracle {expected['output']}")
        checked += 1
    return checked


async def count_outcomes(redis: Redis, result_keys: Sequence[str]) -> int:
    """How many of these `R(M)` keys exist."""
    total = 0
    for start in range(0, len(result_keys), 1000):
        total += int(await redis.exists(*result_keys[start : start + 1000]))
    return total


async def verify_stored(redis: Redis, message_ids: Sequence[str], sample: int) -> int:
    """Like `verify_outcomes`, for messages whose events are only in Redis: read `E(M)` back first."""
    ended = [m for m in message_ids if await read_outcome(redis, m) is not None]
    picked = [ended[i] for i in sample_indexes(len(ended), sample)]
    events = [await read_events(redis, m) for m in picked]
    return await verify_outcomes(redis, picked, events, sample)
