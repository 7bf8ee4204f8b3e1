"""Keeping the consumer group's member list to the workers that exist: no residue from churn.

Every worker that ever claimed stays a consumer of the group until removed, so
a fleet that scales up and down would grow `XINFO CONSUMERS` without bound.
Workers remove consumers that own no pending entry and have been idle past
`remove_idle_consumers_after_s`, and a stopping worker that owns nothing
removes itself. The check and the removal are one script: `XGROUP DELCONSUMER`
drops a consumer's pending entries with it, so a consumer that owns even one is
never removed (its entries are taken over as usual, and it goes once it owns
none). A live consumer removed while idle is created again by its next read.
"""

from __future__ import annotations

from redis.asyncio import Redis

# KEYS: D(k). ARGV: group, least idle ms, the name to spare (or ""), the only name to remove (or "").
# Returns the names removed.
REMOVE_IDLE_LUA = """
local removed = {}
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local fields = {}
  for i = 1, #consumer, 2 do fields[consumer[i]] = consumer[i + 1] end
  local name = fields['name']
  if fields['pending'] == 0 and fields['idle'] >= tonumber(ARGV[2]) and name ~= ARGV[3]
     and (ARGV[4] == '' or name == ARGV[4]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    table.insert(removed, name)
  end
end
return removed
"""


class IdleConsumers:
    """Removal of the group's consumers that own nothing, for one worker."""

    def __init__(self, redis: Redis, *, group: str, consumer: str, idle_s: float) -> None:
        self._group = group
        self._consumer = consumer
        self._idle_ms = int(idle_s * 1000)
        self._remove = redis.register_script(REMOVE_IDLE_LUA)

    async def sweep(self, dispatch: str) -> list[str]:
        """Remove the other consumers of `D(k)` idle past the bound that own no entry."""
        return await self._run(dispatch, self._idle_ms, spare=self._consumer, only="")

    async def leave(self, dispatch: str) -> bool:
        """Remove this worker's own consumer, unless it still owns entries (it is stopping)."""
        return bool(await self._run(dispatch, 0, spare="", only=self._consumer))

    async def _run(self, dispatch: str, idle_ms: int, *, spare: str, only: str) -> list[str]:
        names = await self._remove(keys=[dispatch], args=[self._group, idle_ms, spare, only])
        return [name.decode() if isinstance(name, bytes) else str(name) for name in names]
