"""A run's index `X(R)` (wire format v1.1): one entry per message in the order they started, then `end`.

Entries get explicit ids `0-1, 0-2, …` so a retried write is refused by Redis
instead of doubled. The `end` entry is appended by a script that writes it only
if the run has not ended, so the producer and a follower ending a run whose
producer died can't both end it. Run notices go to `P:runs`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import ResponseError

from lcstream.streams.backoff import retry_transient
from lcstream.streams.cluster import RedisClient, node_for
from lcstream.streams.events import now_ms
from lcstream.streams.keys import Keyspace, RunKeys

RUN_ENDINGS = frozenset({"completed", "failed", "interrupted"})
DEFAULT_INDEX_RETENTION_S = 86_400
END_FIELD = "end"
_DUPLICATE_ID = "equal or smaller than the target stream top item"

# KEYS: X(R). ARGV: retention s, then the end entry's fields. Appends them as the next entry unless the
# run has ended already; the index then expires after the retention.
_END_LUA = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local seq = 1
if #last > 0 then
  local fields = last[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'end' then return 0 end
  end
  seq = tonumber(string.match(last[1][1], '^0%-(%d+)$')) + 1
end
redis.call('XADD', KEYS[1], '0-' .. seq, unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


async def publish_run_notice(redis: RedisClient, keyspace: Keyspace, run_id: str, status: str) -> None:
    """Announce on `P:runs` that R started or ended (classic pub/sub: any node of a cluster reaches all)."""
    channel = keyspace.run_notices
    notice = orjson.dumps({"run_id": run_id, "status": status})
    await (await node_for(redis, channel)).publish(channel, notice)


async def end_run(
    redis: RedisClient,
    keyspace: Keyspace,
    run_id: str,
    status: str,
    *,
    error: Mapping[str, str] | None = None,
    retention_s: int,
    retry_deadline_s: float = 30.0,
) -> bool:
    """Append R's `end` entry and announce it; False (nothing written) if R had ended already."""
    if status not in RUN_ENDINGS:
        raise ValueError(f"a run ends {sorted(RUN_ENDINGS)}, not {status!r}")
    keys = keyspace.run(run_id)
    fields: list[bytes | str] = [END_FIELD, status, "t", str(now_ms())]
    if error is not None:
        fields += ["error", orjson.dumps({"message": error["message"], "code": error["code"]})]
    node = await node_for(redis, keys.index)

    async def append_end() -> Any:
        return await node.execute_command("EVAL", _END_LUA, 1, keys.index, retention_s, *fields)  # type: ignore[no-untyped-call]

    written = await retry_transient(append_end, what=f"ending run {run_id}", deadline_s=retry_deadline_s)
    if written:
        await publish_run_notice(redis, keyspace, run_id, status)
    return bool(written)


class RunIndex:
    """Appends the messages of run R to `X(R)` in the order they start, one write at a time."""

    def __init__(
        self,
        redis: RedisClient,
        keyspace: Keyspace,
        run_id: str,
        *,
        retention_s: int = DEFAULT_INDEX_RETENTION_S,
        retry_deadline_s: float = 30.0,
    ) -> None:
        """Each entry sets the index's TTL to `retention_s` (a run never ended expires all the same)."""
        self.run_id = run_id
        self._retention_s = retention_s
        self._retry_deadline_s = retry_deadline_s
        self.keys: RunKeys = keyspace.run(run_id)
        self._redis = redis
        self._keyspace = keyspace
        self._written = 0
        self._lock = asyncio.Lock()

    @property
    def messages(self) -> int:
        """Messages recorded so far."""
        return self._written

    async def add(self, message_id: str, *, namespace: list[str] | None, node: str | None) -> None:
        """Record that M started (the first message also announces the run on `P:runs`)."""
        fields: dict[Any, Any] = {"m": message_id, "t": now_ms()}
        if namespace:
            fields["ns"] = orjson.dumps(namespace)
        if node:
            fields["node"] = node
        async with self._lock:  # in order: entry n+1 is written after entry n
            seq = self._written + 1
            await retry_transient(
                lambda: self._append(seq, fields),
                what=f"indexing run {self.run_id}",
                deadline_s=self._retry_deadline_s,
            )
            self._written = seq
        if seq == 1:
            await publish_run_notice(self._redis, self._keyspace, self.run_id, "started")

    async def _append(self, seq: int, fields: dict[Any, Any]) -> None:
        try:
            await self._redis.xadd(self.keys.index, fields, id=f"0-{seq}")
            await self._redis.expire(self.keys.index, self._retention_s)
        except ResponseError as exc:
            if _DUPLICATE_ID not in str(exc):
                raise
            # Entry `seq` exists: this write's own, whose reply a dropped connection lost, or an ending a
            # follower wrote for a run it took as dead. Either way the index holds entry `seq`.


@dataclass(frozen=True, slots=True)
class RunMember:
    """The n-th message of a run to start (n from 0), where it ran (namespace, node)."""

    index: int
    message_id: str
    namespace: list[str]
    node: str | None


@dataclass(frozen=True, slots=True)
class RunEnding:
    """The run's `end` entry: how it ended, and why when it failed."""

    status: str
    error: dict[str, str] | None


def index_entries(
    entries: list[tuple[bytes, dict[bytes, bytes]]], first: int = 0
) -> list[RunMember | RunEnding]:
    """`X(R)` entries as members (numbered from `first`) and, last, the ending."""
    parsed: list[RunMember | RunEnding] = []
    for _, fields in entries:
        if (status := fields.get(END_FIELD.encode())) is not None:
            error = orjson.loads(fields[b"error"]) if b"error" in fields else None
            parsed.append(RunEnding(status.decode(), error))
            continue
        namespace = orjson.loads(fields[b"ns"]) if b"ns" in fields else []
        node = fields[b"node"].decode() if b"node" in fields else None
        parsed.append(RunMember(first + len(parsed), fields[b"m"].decode(), namespace, node))
    return parsed


async def lists_message(redis: RedisClient, keyspace: Keyspace, run_id: str, message_id: str) -> bool:
    """Whether run R's index lists message M (a run's read token opens the messages it lists)."""
    wanted = message_id.encode()
    entries = await redis.xrange(keyspace.run(run_id).index)
    return any(fields.get(b"m") == wanted for _, fields in entries)


async def run_status(redis: RedisClient, keyspace: Keyspace, run_id: str) -> str | None:
    """How run R stands: None (no index), `running`, or how it ended."""
    last = await redis.xrevrange(keyspace.run(run_id).index, count=1)
    if not last:
        return None
    ending = last[0][1].get(END_FIELD.encode())
    return ending.decode() if ending is not None else "running"
