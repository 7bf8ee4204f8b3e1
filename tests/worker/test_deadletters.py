"""`worker/deadletters.py`: re-running a dead-lettered message."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from lcstream.streams.keys import Keyspace
from lcstream.worker import deadletters
from lcstream.worker.deadletters import list_dead_letters, retry_dead_letter

FAILED = b'{"status":"failed","error":{"message":"bad event","code":"invalid_json"}}'


async def test_retry_keeps_the_dead_letter_of_a_rerun_that_was_faster(
    any_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyspace = Keyspace()
    keys = keyspace.message("m-1")
    await any_redis.xadd(keys.events, {"e": b"{}"}, id="0-1")
    await any_redis.set(keys.result, FAILED)
    await any_redis.xadd(keyspace.dead, {"m": "m-1", "reason": "invalid_json", "dispatch_id": "1-0"})

    async def worker_was_faster(redis: Redis, ks: Keyspace, **options: Any) -> list[deadletters.DeadLetter]:
        # A worker claims the re-announcement and dead-letters it again before retry looks for stale letters.
        [(announced, _)] = await redis.xrevrange(keys.dispatch, count=1)
        await redis.xadd(ks.dead, {"m": "m-1", "reason": "invalid_json", "dispatch_id": announced})
        return await list_dead_letters(redis, ks, **options)

    monkeypatch.setattr(deadletters, "list_dead_letters", worker_was_faster)
    announced = await retry_dead_letter(any_redis, keyspace, "m-1")
    letters = await list_dead_letters(any_redis, keyspace, message_id="m-1")
    assert [letter.dispatch_id for letter in letters] == [announced]
    assert await any_redis.get(keys.result) is None
