"""How far a consumer group is behind on a dispatch stream: what autoscaling and alerts watch."""

from __future__ import annotations

from dataclasses import dataclass

from streams.cluster import RedisClient


@dataclass(frozen=True, slots=True)
class GroupBacklog:
    """`lag`: entries not yet delivered to the group (None when Redis can't tell, after an XDEL);
    `pending`: delivered, not yet acknowledged (messages open in some worker)."""

    lag: int | None
    pending: int


async def group_backlog(redis: RedisClient, dispatch: str, group: str) -> GroupBacklog | None:
    """The group's backlog on `dispatch`, or None when the stream or the group does not exist yet."""
    if not await redis.exists(dispatch):
        return None
    for info in await redis.xinfo_groups(dispatch):
        name = info["name"]
        if (name.decode() if isinstance(name, bytes) else name) == group:
            return GroupBacklog(lag=info.get("lag"), pending=info["pending"])
    return None
