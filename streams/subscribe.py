"""`subscribe()`: a message's frames, catch-up then live, once each, in order, resumable from any seq.

The classic replay/live race is closed by order: subscribe to `L(M)` first,
then read history from `O(M)`, then take live frames, dropping seqs already
seen. A live frame that skips ahead (pub/sub is at most once: a dropped
connection loses messages) is filled in from `O(M)`, which holds every frame.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from lcstream.streams.cluster import LiveSubscription, RedisClient
from lcstream.streams.frames import TERMINAL_KINDS, Frame
from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import read_frames


async def subscribe(
    redis: RedisClient,
    message_id: str,
    *,
    after: int = 0,
    keyspace: Keyspace | None = None,
    quiet_check_s: float = 1.0,
) -> AsyncIterator[Frame]:
    """Yield frames of M with seq above `after` until its terminal frame (`output` or `error`).

    When no live frame arrives for `quiet_check_s`, `O(M)` is read again, so
    frames whose publish was missed still arrive.
    """
    keys = (keyspace or Keyspace()).message(message_id)
    live_channel = await LiveSubscription.open(redis, keys.live)
    try:
        last = after
        for frame in await read_frames(redis, message_id, keyspace, after=last):
            yield frame
            last = frame.seq
            if frame.kind in TERMINAL_KINDS:
                return
        while True:
            payload = await live_channel.get(quiet_check_s)
            live = Frame.from_live(payload) if payload is not None else None
            if live is not None and live.seq <= last:
                continue  # already yielded from history
            if live is None or live.seq > last + 1:
                # Quiet, or a gap: O(M) has every frame.
                for frame in await read_frames(redis, message_id, keyspace, after=last):
                    yield frame
                    last = frame.seq
                    if frame.kind in TERMINAL_KINDS:
                        return
                continue
            yield live
            last = live.seq
            if live.kind in TERMINAL_KINDS:
                return
    finally:
        await live_channel.aclose()
