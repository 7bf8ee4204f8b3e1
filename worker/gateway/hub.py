"""One reader per message, fanned out to every SSE client of that message.

Readers share one pub/sub connection (`live_mux`) and the gateway's bounded
connection pool, so the connections to Redis don't grow with the messages
watched; at most `LCSTREAM_GATEWAY_MAX_READERS` messages have a reader at once.

A client first catches up from `O(M)` on its own, page by page at its own
pace, and joins the message's hub only once it has every frame up to the
hub's head. The hub's reader (`streams.subscribe`, started from the first
client's position) then hands it each new frame through a bounded queue.
So a late client costs XRANGE pages, not a second reader, and the hub keeps
no history: the only buffers are the clients' queues, each at most
`capacity` frames (shared bytes). A client whose queue is full is cut off;
it resumes with `Last-Event-ID` and catches up from `O(M)` like a late one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import structlog

from lcstream.streams.backoff import TRANSIENT_ERRORS, Backoff, cancel_requested, is_transient
from lcstream.streams.cluster import LiveChannels, RedisClient
from lcstream.streams.keys import Keyspace
from lcstream.streams.subscribe import subscribe
from lcstream.worker.gateway.metrics import GatewayMetrics
from lcstream.worker.gateway.sse_format import EncodedFrame, encode_frame

log = structlog.get_logger("lcstream.gateway")


class ClientFeed:
    """One SSE client's bounded queue of live frames after seq `after`."""

    __slots__ = ("_frames", "_wake", "after", "capacity", "closed", "hub", "on_cut")

    def __init__(self, after: int, capacity: int) -> None:
        self.after = after
        self.capacity = capacity
        self.closed = False
        self.hub: MessageHub | None = None
        self.on_cut: Callable[[], None] = lambda: None  # the response sets it: ends the stream at once
        self._frames: deque[EncodedFrame] = deque()
        self._wake = asyncio.Event()

    def offer(self, frame: EncodedFrame) -> bool:
        """Queue `frame` unless the client already has it; False when the queue is full."""
        if frame.seq <= self.after:
            return True
        if len(self._frames) >= self.capacity:
            return False
        self._frames.append(frame)
        self._wake.set()
        return True

    def close(self) -> None:
        """No more frames will come: `next()` returns None once the queue is drained."""
        self.closed = True
        self._wake.set()

    async def next(self) -> EncodedFrame | None:
        """The next queued frame, waiting for one; None once closed and drained."""
        while not self._frames:
            if self.closed:
                return None
            self._wake.clear()
            await self._wake.wait()
        return self._frames.popleft()


class MessageHub:
    """The reader of one message and the clients it feeds; `head` is the last seq it handed out."""

    def __init__(
        self,
        redis: RedisClient,
        keyspace: Keyspace,
        message_id: str,
        *,
        head: int,
        live: LiveChannels,
        metrics: GatewayMetrics,
        on_end: Callable[[MessageHub], None],
    ) -> None:
        self.message_id = message_id
        self._live = live
        self.head = head
        self.ended = False
        self.clients: set[ClientFeed] = set()
        self.task: asyncio.Task[None] | None = None
        self._redis = redis
        self._keyspace = keyspace
        self._metrics = metrics
        self._on_end = on_end

    def add(self, feed: ClientFeed) -> bool:
        """Take `feed` in if it has every frame up to `head`; else it must catch up first."""
        if self.ended or feed.after < self.head:
            return False
        self.clients.add(feed)
        feed.hub = self
        return True

    async def run(self) -> None:
        """Read frames after `head` until the terminal one; a Redis fault resumes from `head`."""
        delays = Backoff(first_s=0.1, max_s=5.0).delays()
        while not self.ended and not cancel_requested():
            try:
                async for frame in subscribe(
                    self._redis, self.message_id, after=self.head, keyspace=self._keyspace,
                    wait_for_start_s=None, live=self._live,
                ):  # fmt: skip
                    self._fan_out(encode_frame(frame))
                    # Let every client take the frame before the next: a burst read from Redis must
                    # not fill the queues of clients whose sockets keep up.
                    await asyncio.sleep(0)
            except TRANSIENT_ERRORS as exc:
                if not is_transient(exc):
                    raise
                delay_s = next(delays)
                log.warning(
                    "reader-retrying", message_id=self.message_id, seq=self.head,
                    error=str(exc), retry_in_s=round(delay_s, 3),
                )  # fmt: skip
                await asyncio.sleep(delay_s)

    def close_all(self) -> None:
        """End every client's stream after what is queued (the reader stopped)."""
        for feed in self.clients:
            feed.close()

    def _fan_out(self, frame: EncodedFrame) -> None:
        if frame.seq <= self.head:
            return  # handed out already
        self.head = frame.seq
        behind = [feed for feed in self.clients if not feed.offer(frame)]
        for feed in behind:
            self.clients.discard(feed)
            self._metrics.clients_cut.inc()
            log.info("client-cut", message_id=self.message_id, seq=frame.seq, after=feed.after)
            feed.on_cut()
        if frame.terminal:
            # Forget the hub before anything else runs: a client arriving now catches up from O(M),
            # which holds the terminal frame, instead of joining a hub that will send nothing more.
            self.ended = True
            self._on_end(self)
            self.close_all()
        elif behind and not self.clients:
            self._on_end(self)


class HubRegistry:
    """The hubs of the messages that have SSE clients now, and their reader tasks."""

    def __init__(
        self,
        redis: RedisClient,
        keyspace: Keyspace,
        metrics: GatewayMetrics,
        *,
        live: LiveChannels,
        capacity: int,
    ) -> None:
        self._redis = redis
        self._keyspace = keyspace
        self._metrics = metrics
        self._live = live
        self._capacity = capacity
        self._hubs: dict[str, MessageHub] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def active(self) -> int:
        """Messages with a reader now."""
        return len(self._hubs)

    def has_room_for(self, message_id: str) -> bool:
        """Whether a client of M can be served: M has a reader, or there is room for one more."""
        return message_id in self._hubs or len(self._hubs) < self._capacity

    def join(self, message_id: str, feed: ClientFeed) -> bool:
        """Add `feed` to M's hub, starting the hub (at `feed.after`) if M has none.

        False: the hub is ahead of the client, which must read more of `O(M)` first.
        Synchronous on purpose: no frame can be handed out between the check and the join.
        """
        hub = self._hubs.get(message_id)
        if hub is None:
            hub = MessageHub(
                self._redis, self._keyspace, message_id,
                head=feed.after, live=self._live, metrics=self._metrics, on_end=self._stop,
            )  # fmt: skip
            self._hubs[message_id] = hub
            hub.task = asyncio.create_task(self._serve(hub), name=f"gateway-reader:{message_id}")
            self._tasks.add(hub.task)
            hub.task.add_done_callback(self._tasks.discard)
        return hub.add(feed)

    def leave(self, feed: ClientFeed) -> None:
        """The client's stream ended; the last one to leave stops the reader."""
        hub = feed.hub
        if hub is None:
            return
        hub.clients.discard(feed)
        if not hub.clients and not hub.ended:
            self._stop(hub)

    async def aclose(self) -> None:
        """Stop every reader and wait for them."""
        for hub in list(self._hubs.values()):
            self._stop(hub)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _stop(self, hub: MessageHub) -> None:
        if self._hubs.get(hub.message_id) is hub:
            del self._hubs[hub.message_id]
        if hub.task is not None and not hub.ended:
            hub.task.cancel()

    async def _serve(self, hub: MessageHub) -> None:
        self._metrics.readers.inc()
        self._metrics.readers_started.inc()
        try:
            await hub.run()
        except Exception as exc:  # a reader must never die silently: its clients end and reconnect
            log.error("reader-failed", message_id=hub.message_id, seq=hub.head, error=repr(exc))
        finally:
            self._metrics.readers.dec()
            if self._hubs.get(hub.message_id) is hub:
                del self._hubs[hub.message_id]
            hub.close_all()
