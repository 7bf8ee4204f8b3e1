"""`subscribe()`: a message's frames, catch-up then live, once each, in order, resumable from any seq.

The classic replay/live race is closed by order: subscribe to `L(M)` first,
then read history from `O(M)`, then take live frames, dropping seqs already
seen. A live frame that skips ahead (pub/sub is at most once: a dropped
connection loses messages) is filled in from `O(M)`, which holds every frame.

It never waits on what can't come: a message whose outcome is written has all
its frames in `O(M)` (the worker writes both in one script), so following it
past its last frame ends at once; a message of which nothing exists ends with
`MessageNotFoundError` after `wait_for_start_s`. A Redis restart or failover is
ridden out: the subscription resumes from the last frame it yielded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lcstream.streams.backoff import Backoff
from lcstream.streams.cluster import LiveChannels, LiveSubscription, RedisClient
from lcstream.streams.errors import MessageNotFoundError, RedisUnavailableError
from lcstream.streams.frames import TERMINAL_KINDS, Frame
from lcstream.streams.keys import Keyspace, MessageKeys, default_keyspace
from lcstream.streams.reader import DEFAULT_WAIT_FOR_START_S, read_frames


async def subscribe(
    redis: RedisClient,
    message_id: str,
    *,
    after: int = 0,
    keyspace: Keyspace | None = None,
    quiet_check_s: float = 1.0,
    wait_for_start_s: float | None = DEFAULT_WAIT_FOR_START_S,
    reconnect_s: float = 30.0,
    live: LiveChannels = LiveSubscription,
) -> AsyncIterator[Frame]:
    """Yield frames of M with seq above `after` until its terminal frame (`output` or `error`).

    Ends at once when M ended at or before `after`. When no live frame arrives
    for `quiet_check_s`, `O(M)` is read again, so frames whose publish was missed
    still arrive.

    Raises:
        MessageNotFoundError: nothing of M (events, frames, outcome) appeared within
            `wait_for_start_s` (None: wait for its producer as long as it takes).
        RedisUnavailableError: Redis stayed unreachable for `reconnect_s`.

    `live` opens the live channel (a connection of its own by default; the
    gateway passes its multiplexer).
    """
    space = keyspace or default_keyspace()
    keys = space.message(message_id)
    give_up_at = None if wait_for_start_s is None else time.monotonic() + wait_for_start_s
    last, delays, unreachable_since = after, Backoff().delays(), None
    while True:
        try:
            async with contextlib.aclosing(
                _follow(redis, keys, space, last, quiet_check_s, give_up_at, live)
            ) as frames:
                async for frame in frames:
                    yield frame
                    last, unreachable_since = frame.seq, None
            return
        except (RedisConnectionError, RedisTimeoutError, ConnectionError) as exc:
            now = time.monotonic()
            unreachable_since = unreachable_since or now
            if now - unreachable_since > reconnect_s:
                raise RedisUnavailableError(f"following {message_id}: Redis unreachable: {exc}") from exc
            await asyncio.sleep(next(delays))


async def _follow(
    redis: RedisClient,
    keys: MessageKeys,
    keyspace: Keyspace,
    after: int,
    quiet_check_s: float,
    give_up_at: float | None,
    live: LiveChannels,
) -> AsyncGenerator[Frame, None]:
    """One subscription's worth of `subscribe()`: frames after `after`, until the end."""
    message_id, last = keys.message_id, after
    live_channel = await live.open(redis, keys.live)
    try:
        while True:
            ended = await redis.exists(keys.result)  # before the read: then it holds every frame
            for frame in await read_frames(redis, message_id, keyspace, after=last):
                yield frame
                last = frame.seq
                if frame.kind in TERMINAL_KINDS:
                    return
            if ended:  # nothing after `last`: the message ended at or before it
                return
            waited = last == 0 and give_up_at is not None and time.monotonic() > give_up_at
            if waited and not await redis.exists(keys.events, keys.out):
                raise MessageNotFoundError(f"no message {message_id}: no events, frames or outcome")
            while (payload := await live_channel.get(quiet_check_s)) is not None:
                frame = Frame.from_live(payload)
                if frame.seq <= last:
                    continue  # already yielded from history
                if frame.seq > last + 1:
                    break  # a gap: O(M) has every frame
                yield frame
                last = frame.seq
                if frame.kind in TERMINAL_KINDS:
                    return
    finally:
        await live_channel.aclose()
