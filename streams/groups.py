"""Consumer groups on a dispatch stream: how far behind they are (what autoscaling and alerts watch), and
trimming the stream below what they still need."""

from __future__ import annotations

from dataclasses import dataclass

from redis.exceptions import ResponseError

from lcstream.streams.cluster import RedisClient
from lcstream.streams.ordering import parse_entry_id


@dataclass(frozen=True, slots=True)
class GroupBacklog:
    """`lag`: entries not yet delivered to the group (None when Redis can't tell, after an XDEL);
    `pending`: delivered, not yet acknowledged (messages open in some worker); `entries_read`: delivered
    since the group was created."""

    lag: int | None
    pending: int
    entries_read: int = 0


@dataclass(frozen=True, slots=True)
class GroupConsumer:
    """One consumer of the group on a dispatch stream: the entries it owns, and how long it has been idle."""

    name: str
    pending: int
    idle_ms: int


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


async def group_backlog(redis: RedisClient, dispatch: str, group: str) -> GroupBacklog | None:
    """The group's backlog on `dispatch`, or None when the stream or the group does not exist yet."""
    try:
        groups = await redis.xinfo_groups(dispatch)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return None  # no worker created it yet
        raise
    for info in groups:
        if _text(info["name"]) == group:
            return GroupBacklog(
                lag=info.get("lag"), pending=info["pending"], entries_read=info.get("entries-read") or 0
            )
    return None


async def group_consumers(redis: RedisClient, dispatch: str, group: str) -> list[GroupConsumer]:
    """The consumers of `group` on `dispatch` (XINFO CONSUMERS), as Redis lists them."""
    return [
        GroupConsumer(name=_text(c["name"]), pending=int(c["pending"]), idle_ms=int(c["idle"]))
        for c in await redis.xinfo_consumers(dispatch, group)
    ]


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
