"""One pub/sub connection for every live channel the gateway follows (one per node on a Redis Cluster).

Redis lets one connection subscribe to any number of channels, so the gateway's
connections do not grow with the messages it streams: the mux subscribes `L(M)`
when a message's reader starts, unsubscribes it when the reader stops, and hands
each published frame to that channel's subscription. A subscription has the
`get`/`aclose` of `streams.cluster.LiveSubscription`, so `subscribe()` follows a
message through either. A dropped connection is opened again with every channel
subscribed anew; each subscription then gets `None` once, as after a quiet
spell, so its reader re-reads `O(M)`, which holds every frame.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from lcstream.streams.backoff import TRANSIENT_ERRORS, Backoff, cancel_requested
from lcstream.streams.cluster import RedisClient, is_cluster, node_for

log = structlog.get_logger("lcstream.gateway")

CONFIRM_TIMEOUT_S = 10.0
QUEUE_FRAMES = 10_000  # a reader further behind gets a gap, and reads O(M) instead


def _log_end(reader: asyncio.Task[None]) -> None:
    # The reader retries Redis faults by itself; anything else ends it, and the next `join` starts another.
    if not reader.cancelled() and (exc := reader.exception()) is not None:
        log.error("live-mux-failed", error=repr(exc))


class MuxSubscription:
    """One channel's published payloads, as the mux receives them."""

    def __init__(self, lane: _Lane, channel: bytes) -> None:
        self._lane = lane
        self.channel = channel
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_FRAMES)

    def deliver(self, payload: bytes | None) -> None:
        """Queue a payload (None: frames may have been missed); a full queue becomes a gap."""
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(None)

    async def get(self, timeout_s: float) -> bytes | None:
        """The next payload, or None when none came within `timeout_s` (or frames may be missing)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                return await self._queue.get()
        return None

    async def aclose(self) -> None:
        """Stop receiving this channel."""
        await self._lane.leave(self)


class _Lane:
    """The pub/sub connection of one node and the subscriptions it carries."""

    def __init__(self, node: Redis, *, sharded: bool) -> None:
        self._node = node
        self._sharded = sharded
        self._subscriptions: defaultdict[bytes, set[MuxSubscription]] = defaultdict(set)
        self._confirmed: dict[bytes, asyncio.Event] = {}
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def join(self, channel: bytes) -> MuxSubscription:
        subscription = MuxSubscription(self, channel)
        first = not self._subscriptions[channel]
        self._subscriptions[channel].add(subscription)
        confirmed = self._confirmed.setdefault(channel, asyncio.Event())
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name="gateway-live-mux")
            self._reader.add_done_callback(_log_end)
        try:
            if first and self._connected.is_set():  # else the reader subscribes it once connected
                await self._subscribe(channel)
            # Subscribed before the caller reads history: no publish after that read can be missed.
            async with asyncio.timeout(CONFIRM_TIMEOUT_S):
                await confirmed.wait()
        except BaseException:
            await self.leave(subscription)  # nothing stays subscribed for a caller that got an error
            raise
        return subscription

    async def leave(self, subscription: MuxSubscription) -> None:
        channel = subscription.channel
        subscribers = self._subscriptions.get(channel)
        if subscribers is None or subscription not in subscribers:
            return  # left already
        subscribers.discard(subscription)
        if subscribers:
            return
        del self._subscriptions[channel]
        self._confirmed.pop(channel, None)
        if self._pubsub is not None:
            with contextlib.suppress(*TRANSIENT_ERRORS):
                await self._command("SUNSUBSCRIBE" if self._sharded else "UNSUBSCRIBE", channel)

    @property
    def channels(self) -> int:
        return len(self._subscriptions)

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _subscribe(self, channel: bytes) -> None:
        self._confirmed.setdefault(channel, asyncio.Event()).clear()  # a waiter keeps its event
        await self._command("SSUBSCRIBE" if self._sharded else "SUBSCRIBE", channel)

    async def _command(self, *args: bytes | str) -> None:
        assert self._pubsub is not None
        await self._pubsub.execute_command(*args)

    async def _read(self) -> None:
        """Receive until cancelled; on a fault, open a new connection and subscribe every channel again."""
        delays = Backoff(first_s=0.1, max_s=5.0).delays()
        reconnecting = False
        while not cancel_requested():
            self._pubsub = self._node.pubsub()
            try:
                await self._command("PING")  # opens the connection
                self._connected.set()  # from here `join` subscribes a new channel itself
                for channel in list(self._subscriptions):
                    await self._subscribe(channel)
                if reconnecting:  # frames may have gone by while disconnected
                    for subscriptions in self._subscriptions.values():
                        for subscription in subscriptions:
                            subscription.deliver(None)
                delays = Backoff(first_s=0.1, max_s=5.0).delays()
                await self._route()
            except TRANSIENT_ERRORS as exc:
                self._connected.clear()
                reconnecting = True
                delay_s = next(delays)
                log.warning("live-mux-retrying", error=str(exc), retry_in_s=round(delay_s, 3))
                await asyncio.sleep(delay_s)
            finally:
                with contextlib.suppress(*TRANSIENT_ERRORS):
                    await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _route(self) -> None:
        assert self._pubsub is not None
        while not cancel_requested():
            message = await self._pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
            if message is None:
                continue
            kind, channel = message["type"], message["channel"]
            if kind in ("subscribe", "ssubscribe") and channel in self._confirmed:
                self._confirmed[channel].set()
            elif kind in ("message", "smessage"):
                for subscription in self._subscriptions.get(channel, ()):
                    subscription.deliver(message["data"])


class LiveMux:
    """The gateway's live channels, over one connection per node."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._lanes: dict[int, _Lane] = {}

    async def open(self, client: RedisClient, channel: str) -> MuxSubscription:
        """Subscribe `channel` (confirmed by Redis before this returns), as `LiveSubscription.open` does."""
        node = await node_for(self._redis, channel)
        lane = self._lanes.get(id(node))
        if lane is None:
            lane = self._lanes[id(node)] = _Lane(node, sharded=is_cluster(self._redis))
        return await lane.join(channel.encode())

    @property
    def channels(self) -> int:
        """Channels subscribed now."""
        return sum(lane.channels for lane in self._lanes.values())

    async def aclose(self) -> None:
        """Close every connection."""
        for lane in self._lanes.values():
            await lane.aclose()
