"""Claims as leases: renewing our own, handing them back, and taking over abandoned ones.

A claim is a dispatch entry in this consumer's pending list. Its idle time is
the lease: renewal resets it, a peer takes over an entry idle past
`takeover_after_ms` with `XAUTOCLAIM` (which advances the delivery count).
Renewal and release are fenced in one script: an entry another consumer owns
now is reported lost, never claimed back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

# KEYS: D(k). ARGV: group, consumer, idle ms, then (entry id, delivery count) pairs.
# Returns the ids this consumer no longer owns.
RECLAIM_LUA = """
local lost = {}
for i = 4, #ARGV, 2 do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 0 or p[1][2] ~= ARGV[2] then
    table.insert(lost, ARGV[i])
  else
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i],
               'IDLE', ARGV[3], 'RETRYCOUNT', ARGV[i + 1], 'JUSTID')
  end
end
return lost
"""

# Idle time given to a released entry: far past any takeover time, so a peer takes it at once.
RELEASED_IDLE_MS = 10 * 365 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Claimed:
    """A dispatch entry this consumer now owns."""

    entry_id: bytes
    fields: Mapping[bytes, bytes]
    deliveries: int


class Leases:
    """Lease operations on the dispatch streams, for one consumer of one group."""

    def __init__(self, redis: Redis, *, group: str, consumer: str, takeover_after_ms: int) -> None:
        self._redis = redis
        self._group = group
        self._consumer = consumer
        self._takeover_after_ms = takeover_after_ms
        self._reclaim = redis.register_script(RECLAIM_LUA)

    async def load_script(self) -> None:
        """Load the lease script before its first `EVALSHA`, so the normal path never meets a
        `NOSCRIPT` error reply (after a restart redis-py loads it again on that reply)."""
        await self._redis.script_load(RECLAIM_LUA)

    async def renew(self, dispatch: str, held: Sequence[tuple[bytes, int]]) -> list[bytes]:
        """Reset the idle time of the held (entry id, deliveries); return the ids lost to a peer."""
        return await self._run_reclaim(dispatch, held, idle_ms=0)

    async def release(self, dispatch: str, held: Sequence[tuple[bytes, int]]) -> list[bytes]:
        """Hand entries back unacked, idle enough that a peer takes them over now.

        The delivery count is set one lower, so the peer's takeover brings it back
        to where it was: a handed-back message is not a failed delivery.
        """
        handed = [(entry_id, max(deliveries - 1, 0)) for entry_id, deliveries in held]
        return await self._run_reclaim(dispatch, handed, idle_ms=RELEASED_IDLE_MS)

    async def _run_reclaim(
        self, dispatch: str, held: Sequence[tuple[bytes, int]], *, idle_ms: int
    ) -> list[bytes]:
        if not held:
            return []
        args: list[bytes | str | int] = [self._group, self._consumer, idle_ms]
        for entry_id, deliveries in held:
            args += [entry_id, deliveries]
        lost = await self._reclaim(keys=[dispatch], args=args)
        return [bytes(entry_id) for entry_id in lost]

    async def take_over(self, dispatch: str, count: int, cursor: bytes) -> tuple[list[Claimed], bytes]:
        """Claim up to `count` entries idle past the takeover time; return them and the next cursor."""
        next_cursor, entries, *_ = await self._redis.xautoclaim(
            dispatch, self._group, self._consumer, self._takeover_after_ms, start_id=cursor, count=count
        )
        live = [(entry_id, fields) for entry_id, fields in entries if fields is not None]
        counts = await self.delivery_counts(dispatch, [entry_id for entry_id, _ in live])
        claimed = [Claimed(entry_id, fields, counts.get(entry_id, 1)) for entry_id, fields in live]
        return claimed, next_cursor

    async def delivery_counts(self, dispatch: str, entry_ids: Sequence[bytes]) -> dict[bytes, int]:
        """How often each entry has been delivered, from the pending list."""
        if not entry_ids:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.xpending_range(dispatch, self._group, min=entry_id, max=entry_id, count=1)
        counts: dict[bytes, int] = {}
        for rows in await pipe.execute():
            for row in rows:
                counts[row["message_id"]] = row["times_delivered"]
        return counts
