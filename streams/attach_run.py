"""`attach_run()`: every message of a run R, as real `AsyncChatModelStream`s, in any process.

It follows the run's index `X(R)` (what is there, then blocking reads) and
yields one `attach()`ed stream per message in the order they started, with
the namespace and node LangGraph gave the call, as `run.messages` does
in-process. It ends after the run's `end` entry, or raises `RunFailedError`
(after yielding every message that ran) when the run failed.

A run whose producer died never gets its `end` entry from it. Its messages
end anyway (workers fail a silent one after `LCSTREAM_IDLE_TIMEOUT_S`); once
every message listed has ended and nothing new was listed for
`run_idle_timeout_s`, a follower ends the run itself (failed, `idle_timeout`),
once for everybody: the script that appends `end` writes it only once.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson

from lcstream.streams.attach import AttachedStream, attach
from lcstream.streams.cluster import RedisClient
from lcstream.streams.errors import MessageNotFoundError, RunFailedError
from lcstream.streams.keys import Keyspace, default_keyspace
from lcstream.streams.reader import DEFAULT_WAIT_FOR_START_S
from lcstream.streams.run_index import END_FIELD, end_run

DEFAULT_RUN_IDLE_TIMEOUT_S = 300.0
DEFAULT_RETENTION_S = 86_400


async def attach_run(
    redis: RedisClient,
    run_id: str,
    *,
    keyspace: Keyspace | None = None,
    block_ms: int = 1000,
    wait_for_start_s: float | None = DEFAULT_WAIT_FOR_START_S,
    run_idle_timeout_s: float = DEFAULT_RUN_IDLE_TIMEOUT_S,
    retention_s: int = DEFAULT_RETENTION_S,
) -> AsyncIterator[AttachedStream]:
    """Yield an `AsyncChatModelStream` per message of run R, in start order, live or replayed.

    Raises:
        MessageNotFoundError: R has no index within `wait_for_start_s` (None: wait as long as it takes).
        RunFailedError: R ended failed or interrupted (after every message that ran was yielded).
    """
    space = keyspace or default_keyspace()
    index = space.run(run_id).index
    cursor = b"0-0"
    open_messages: list[str] = []  # listed, not known to have ended
    quiet_since = time.monotonic()
    give_up_at = None if wait_for_start_s is None else time.monotonic() + wait_for_start_s
    while True:
        reply = await redis.xread({index: cursor}, count=256, block=block_ms)
        for _, entries in reply or ():
            for entry_id, fields in entries:
                cursor, quiet_since = entry_id, time.monotonic()
                if END_FIELD.encode() in fields:
                    _raise_unless_completed(run_id, fields)
                    return
                message_id = fields[b"m"].decode()
                open_messages.append(message_id)
                yield attach(
                    redis, message_id, keyspace=space, block_ms=block_ms, wait_for_start_s=wait_for_start_s,
                    namespace=orjson.loads(fields[b"ns"]) if b"ns" in fields else [],
                    node=fields[b"node"].decode() if b"node" in fields else None,
                )  # fmt: skip
        if reply:
            continue
        if cursor == b"0-0":
            if give_up_at is not None and time.monotonic() > give_up_at:
                raise MessageNotFoundError(f"no run {run_id}: it has no index")
            continue
        open_messages = await _still_open(redis, space, open_messages)
        if not open_messages and time.monotonic() - quiet_since > run_idle_timeout_s:
            # Its producer is gone: end it (or find it ended by another follower), then read the end.
            await end_run(
                redis, space, run_id, "failed", retention_s=retention_s,
                error={"message": f"no new message for {run_idle_timeout_s:g} s and none open",
                       "code": "idle_timeout"},
            )  # fmt: skip


async def _still_open(redis: RedisClient, keyspace: Keyspace, message_ids: list[str]) -> list[str]:
    """The messages of `message_ids` without an outcome yet."""
    return [m for m in message_ids if not await redis.exists(keyspace.message(m).result)]


def _raise_unless_completed(run_id: str, fields: dict[bytes, bytes]) -> None:
    status = fields[END_FIELD.encode()].decode()
    if status == "completed":
        return
    error = orjson.loads(fields[b"error"]) if b"error" in fields else {"message": status, "code": status}
    raise RunFailedError(run_id, status, error["message"], error["code"])
