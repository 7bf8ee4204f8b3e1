"""Consumer groups on a dispatch stream: how far behind they are (what autoscaling and alerts watch), and
trimming the stream below what they still need."""

from __future__ import annotations

from dataclasses import dataclass

from lcstream.streams.cluster import RedisClient
from lcstream.streams.ordering import parse_entry_id


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


async def trim_dispatch(redis: RedisClient, dispatch: str) -> None:
    """Trim `dispatch` below the oldest entry any group still needs (pending, or not yet delivered)."""
    floors: list[tuple[int, int]] = []
    for group in await redis.xinfo_groups(dispatch):
        summary = await redis.xpending(dispatch, group["name"])
        oldest = summary["min"] if summary["pending"] else group["last-delivered-id"]
        floors.append(parse_entry_id(oldest))
    if floors:
        ms, seq = min(floors)
        await redis.xtrim(dispatch, minid=f"{ms}-{seq}", approximate=True)
