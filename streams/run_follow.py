"""Following a run's index `X(R)`: its messages as they start, then its end, for every run reader.

Catch-up, then blocking reads. It ends after the run's `end` entry (completed),
or raises `RunFailedError` on a failed or interrupted end. A run whose producer
died never gets its `end` from it: its messages end anyway (workers fail a
silent one after `LCSTREAM_IDLE_TIMEOUT_S`), and once every message listed has
an outcome and the run's last sign of life (its newest index entry, the last
event of each message, by their producer times `t`) is older than
`run_idle_timeout_s`, the follower ends the run itself (failed,
`idle_timeout`), once for everybody: the script that appends `end` writes it
only once. A follower that comes late to a long-dead run ends it at once.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from lcstream.streams.cluster import RedisClient
from lcstream.streams.errors import MessageNotFoundError, RunFailedError
from lcstream.streams.events import decode_time_ms, now_ms
from lcstream.streams.keys import Keyspace
from lcstream.streams.run_index import RunEnding, RunMember, end_run, index_entries

DEFAULT_RUN_IDLE_TIMEOUT_S = 300.0
DEFAULT_RETENTION_S = 86_400


async def follow_run_index(
    redis: RedisClient,
    run_id: str,
    keyspace: Keyspace,
    *,
    block_ms: int,
    wait_for_start_s: float | None,
    run_idle_timeout_s: float,
    retention_s: int = DEFAULT_RETENTION_S,
) -> AsyncIterator[RunMember]:
    """Yield R's messages in start order until its end.

    Raises:
        MessageNotFoundError: R has no index within `wait_for_start_s` (None: wait as long as it takes).
        RunFailedError: R ended failed or interrupted (after every message was yielded).
    """
    index = keyspace.run(run_id).index
    cursor = b"0-0"
    members: list[str] = []
    give_up_at = None if wait_for_start_s is None else time.monotonic() + wait_for_start_s
    while True:
        reply = await redis.xread({index: cursor}, count=256, block=block_ms)
        for _, entries in reply or ():
            cursor = entries[-1][0]
            for entry in index_entries(entries, first=len(members)):
                if isinstance(entry, RunEnding):
                    if entry.status != "completed":
                        error = entry.error or {"message": entry.status, "code": entry.status}
                        raise RunFailedError(run_id, entry.status, error["message"], error["code"])
                    return
                members.append(entry.message_id)
                yield entry
        if reply:
            continue
        if cursor == b"0-0":
            if give_up_at is not None and time.monotonic() > give_up_at:
                raise MessageNotFoundError(f"no run {run_id}: it has no index")
            continue
        idle_ms = await _idle_ms(redis, keyspace, index, members)
        if idle_ms is not None and idle_ms > run_idle_timeout_s * 1000:
            # Its producer is gone: end it (or find it ended by another follower), then read the end.
            await end_run(
                redis, keyspace, run_id, "failed", retention_s=retention_s,
                error={"message": f"no new message for {run_idle_timeout_s:g} s and none open",
                       "code": "idle_timeout"},
            )  # fmt: skip


async def _idle_ms(redis: RedisClient, keyspace: Keyspace, index: str, members: list[str]) -> int | None:
    """How long the run has shown no sign of life, by producer time; None while a message is open."""
    if any([not await redis.exists(keyspace.message(m).result) for m in members]):
        return None
    stamps = [await _last_time_ms(redis, index)]
    stamps += [await _last_time_ms(redis, keyspace.message(m).events) for m in members]
    return now_ms() - max(stamps)


async def _last_time_ms(redis: RedisClient, stream: str) -> int:
    """The producer time of the stream's newest entry (0 without one, or without a time); a time in the
    future counts as now."""
    last = await redis.xrevrange(stream, count=1)
    time_ms = decode_time_ms(last[0][1]) if last else None
    return min(time_ms, now_ms()) if time_ms is not None else 0
