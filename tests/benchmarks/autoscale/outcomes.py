"""Which messages ended, and how: their `R(M)` (`lcstream:{k}:<id>:result`), read in pipelined chunks."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from redis.asyncio import Redis

from lcstream.streams.keys import Keyspace
from tests.benchmarks.autoscale.timeline import Outcomes

CHUNK = 1000
# `{"status":"completed",...`: enough of R(M) to tell its status without reading the whole message.
STATUS_PREFIX = 32


async def with_outcome(redis: Redis, keyspace: Keyspace, message_ids: Sequence[str]) -> int:
    """How many of these messages have an outcome."""
    total = 0
    for start in range(0, len(message_ids), CHUNK):
        keys = [keyspace.message(m).result for m in message_ids[start : start + CHUNK]]
        total += int(await redis.exists(*keys))
    return total


async def count_outcomes(redis: Redis, keyspace: Keyspace, message_ids: Sequence[str]) -> Outcomes:
    """Completed, failed (by error code) and missing outcomes of these messages."""
    outcomes = Outcomes()
    for start in range(0, len(message_ids), CHUNK):
        keys = [keyspace.message(m).result for m in message_ids[start : start + CHUNK]]
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.getrange(key, 0, STATUS_PREFIX)
            heads: list[bytes] = await pipe.execute()
        for key, head in zip(keys, heads, strict=True):
            if not head:
                outcomes.missing += 1
            elif head.startswith(b'{"status":"completed"'):
                outcomes.completed += 1
            else:
                outcomes.failed += 1
                raw = await redis.get(key)
                error = orjson.loads(raw).get("error") or {} if raw else {}
                code = str(error.get("code", "unknown"))
                outcomes.failures[code] = outcomes.failures.get(code, 0) + 1
    return outcomes
