"""Reading a message's frames from `O(M)` in bounded pages: catch-up, the tail, snapshots."""

from __future__ import annotations

from lcstream.streams.cluster import RedisClient
from lcstream.streams.frames import TERMINAL_KINDS, Frame
from lcstream.streams.keys import MessageKeys
from lcstream.streams.ordering import parse_entry_id
from lcstream.streams.snapshot import Snapshot

PAGE_FRAMES = 500  # frames per XRANGE: catch-up never holds a whole long message in memory


def _frames(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[Frame]:
    return [Frame.from_body(parse_entry_id(entry_id)[1], fields[b"f"]) for entry_id, fields in entries]


async def read_page(
    redis: RedisClient, keys: MessageKeys, *, after: int, count: int = PAGE_FRAMES
) -> list[Frame]:
    """Up to `count` frames of M with seq above `after`, in order."""
    return _frames(await redis.xrange(keys.out, min=f"(0-{after}" if after else "-", count=count))


async def last_frame(redis: RedisClient, keys: MessageKeys) -> Frame | None:
    """The newest frame of M, or None while it has none."""
    return next(iter(_frames(await redis.xrevrange(keys.out, count=1))), None)


def is_terminal(frame: Frame) -> bool:
    """Whether `frame` ends its message (`output` or `error`)."""
    return frame.kind in TERMINAL_KINDS


async def fold_snapshot(redis: RedisClient, keys: MessageKeys) -> Snapshot:
    """The message assembled from every stored frame, read page by page."""
    snapshot = Snapshot(keys.message_id)
    while page := await read_page(redis, keys, after=snapshot.seq):
        for frame in page:
            snapshot.apply(frame)
    return snapshot
