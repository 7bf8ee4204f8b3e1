"""One reader per run, fanned out to every SSE client of that run, with the run's events kept in memory.

A run's hub follows it with `subscribe_run` (its live channels on the gateway's
multiplexer) and encodes each frame once as an SSE event whose id is the run
cursor after it. The events stay in the hub's log while the run has clients,
so every client gets the same sequence: a late one, or one resuming with
`Last-Event-ID`, reads the log from its position, then joins the live feed
(as a message's client joins its hub once caught up). A cursor the log does
not hold (it came from another gateway, or a hub started since) is served by
a reader of the client's own, from that cursor. The last event is `end`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from lcstream.streams.cluster import LiveChannels, RedisClient
from lcstream.streams.errors import RunFailedError
from lcstream.streams.keys import Keyspace
from lcstream.streams.subscribe_run import RunFrame, subscribe_run
from lcstream.worker.gateway.hub import ClientFeed
from lcstream.worker.gateway.sse_format import EncodedFrame

log = structlog.get_logger("lcstream.gateway")

END_ID = "end"


def run_frame_event(position: int, item: RunFrame) -> EncodedFrame:
    """A frame of the run as an SSE event: id the cursor, data the frame tagged with its message."""
    frame = item.frame
    data = {"message_id": item.message_id, "index": item.index, "seq": frame.seq, "kind": frame.kind,
            "data": frame.data}  # fmt: skip
    return EncodedFrame(
        position, False, b"id: %s\nevent: frame\ndata: %s\n\n" % (item.cursor.encode(), orjson.dumps(data))
    )


def run_end_event(position: int, status: str, error: dict[str, str] | None) -> EncodedFrame:
    """The run's last SSE event: how it ended."""
    data: dict[str, Any] = {"status": status, "error": error}
    return EncodedFrame(
        position, True, b"id: %s\nevent: end\ndata: %s\n\n" % (END_ID.encode(), orjson.dumps(data))
    )


class RunHub:
    """The reader of one run, the SSE events it made so far (`log`), and the clients it feeds."""

    def __init__(self, redis: RedisClient, keyspace: Keyspace, run_id: str, *, live: LiveChannels) -> None:
        self.run_id = run_id
        self.log: list[EncodedFrame] = []
        self.positions: dict[str, int] = {}  # event id (cursor) -> its position in the log, from 1
        self.clients: set[ClientFeed] = set()  # fed live
        self.watchers = 0  # streams using the hub: those fed live, and those still reading its log
        self.ended = False
        self.task: asyncio.Task[None] | None = None
        self._redis = redis
        self._keyspace = keyspace
        self._live = live

    def position_of(self, cursor: str | None) -> int | None:
        """Where a client resuming after `cursor` starts in the log (0: the beginning); None if unknown."""
        if cursor is None:
            return 0
        return self.positions.get(cursor)

    def add(self, feed: ClientFeed) -> bool:
        """Take `feed` in once it has every event of the log (`feed.after` is its position)."""
        if self.ended or feed.after < len(self.log):
            return False
        self.clients.add(feed)
        return True

    async def run(self) -> None:
        """Read the run until it ends; the last event says how."""
        try:
            async for item in subscribe_run(
                self._redis, self.run_id, keyspace=self._keyspace, wait_for_start_s=None, live=self._live
            ):
                self._append(run_frame_event(len(self.log) + 1, item), item.cursor)
            self._append(run_end_event(len(self.log) + 1, "completed", None), END_ID)
        except RunFailedError as exc:
            error = {"message": exc.error_message, "code": exc.code}
            self._append(run_end_event(len(self.log) + 1, exc.status, error), END_ID)

    def _append(self, event: EncodedFrame, event_id: str) -> None:
        self.log.append(event)
        self.positions[event_id] = event.seq
        behind = [feed for feed in self.clients if not feed.offer(event)]
        for feed in behind:
            self.clients.discard(feed)
            log.info("client-cut", run_id=self.run_id, position=event.seq)
            feed.on_cut()
        if event.terminal:
            self.ended = True
            for feed in self.clients:
                feed.close()


class RunHubRegistry:
    """The hubs of the runs that have SSE clients now; at most `capacity` runs at once."""

    def __init__(self, redis: RedisClient, keyspace: Keyspace, *, live: LiveChannels, capacity: int) -> None:
        self._redis = redis
        self._keyspace = keyspace
        self._live = live
        self._capacity = capacity
        self._hubs: dict[str, RunHub] = {}

    def has_room_for(self, run_id: str) -> bool:
        """Whether a client of R can be served: R has a hub, or there is room for one more."""
        return run_id in self._hubs or len(self._hubs) < self._capacity

    def existing(self, run_id: str) -> RunHub | None:
        """R's hub, if it has one now."""
        return self._hubs.get(run_id)

    def watch(self, run_id: str) -> RunHub:
        """R's hub, counting one more stream on it; started (reading from the run's start) if R had none."""
        hub = self._hubs.get(run_id)
        if hub is None:
            hub = self._hubs[run_id] = RunHub(self._redis, self._keyspace, run_id, live=self._live)
            hub.task = asyncio.create_task(self._serve(hub), name=f"gateway-run:{run_id}")
        hub.watchers += 1
        return hub

    def leaver(self, hub: RunHub) -> Callable[[ClientFeed], None]:
        """What a stream that `watch`ed `hub` calls when it ends: the last one out stops the hub."""

        def leave(feed: ClientFeed) -> None:
            hub.clients.discard(feed)
            hub.watchers -= 1
            if hub.watchers == 0 and self._hubs.get(hub.run_id) is hub:
                del self._hubs[hub.run_id]  # its log goes with it; a new client starts a new hub
                if hub.task is not None:
                    hub.task.cancel()

        return leave

    async def aclose(self) -> None:
        """Stop every hub's reader."""
        tasks = [hub.task for hub in self._hubs.values() if hub.task is not None]
        self._hubs.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, hub: RunHub) -> None:
        try:
            await hub.run()
        except Exception as exc:  # never silently: its clients end, and resume with Last-Event-ID
            log.error("run-reader-failed", run_id=hub.run_id, error=repr(exc))
            if self._hubs.get(hub.run_id) is hub:
                del self._hubs[hub.run_id]  # the next client starts a new reader
            hub.ended = True
            for feed in hub.clients:
                feed.close()
