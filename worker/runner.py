"""The `Worker`: one `Partition` loop per partition, shared capacity, stop and drain.

A signal only calls `stop()`: intake stops at once, open messages get the
grace period to finish, the rest are handed back unacked for a peer, and
`run()` returns. A Redis fault restarts the affected partition with jittered
exponential back-off, never in a tight loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from redis.exceptions import RedisError, ResponseError

from config import Settings, redact_url
from streams.backoff import Backoff, is_transient, retry_transient
from streams.cluster import NodeRoutedCluster, RedisClient, live_publish_command, node_for, slot_moved
from streams.events import EventLimits
from streams.keys import Keyspace
from streams.ordering import parse_entry_id
from worker.health import Health
from worker.held import Held
from worker.link import NodeLink
from worker.metrics import WorkerMetrics
from worker.partition import Partition
from worker.publisher import FramePublisher
from worker.stats import WorkerStats
from worker.takeover import Leases
from worker.wire import RawCommands

log = structlog.get_logger("lcstream.worker")


class Worker:
    """Serves the dispatch streams of every partition until stopped (or idle, in burst mode)."""

    def __init__(self, redis: RedisClient, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.keyspace = Keyspace(settings.prefix, settings.partitions)
        self.limits = EventLimits(settings.max_event_bytes, settings.max_json_depth)
        self._links: dict[int, NodeLink] = {}  # by id() of the node's client
        self.stats = WorkerStats()
        self.health = Health(settings.partitions)
        self.metrics = WorkerMetrics(self.stats, lambda: self.open_messages, lambda: self.waiting_messages)
        self.held: dict[int, Held] = {}  # what each partition holds
        # Delivery counts of what a partition held when a fault dropped it, by (partition, entry id):
        # re-reading its own pending entries raises them in Redis; the first renewal sets them back.
        self.remembered_deliveries: dict[tuple[int, bytes], int] = {}
        self._reserved = 0
        self._capacity_freed = asyncio.Event()
        self._stopping = asyncio.Event()

    @property
    def open_messages(self) -> int:
        """Messages this worker holds open now."""
        return sum(len(held.open) for held in self.held.values())

    @property
    def waiting_messages(self) -> int:
        """Claimed messages whose first event has not appeared yet."""
        return sum(len(held.waiting) for held in self.held.values())

    @property
    def stopping(self) -> bool:
        """Whether `stop()` was called."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop taking work; open messages get the grace period to finish. Safe from a signal handler."""
        if not self._stopping.is_set():
            log.info(
                "stopping", open_messages=self.open_messages, grace_period_s=self.settings.grace_period_s
            )
        self._stopping.set()
        self.health.stopping = True
        self._capacity_freed.set()

    async def run(self, *, until_idle: bool = False) -> WorkerStats:
        """Serve until `stop()`, or with `until_idle` until no work is open or waiting.

        Redis unreachable at start (a container up before its Redis) is retried with back-off for as
        long as it takes, a line logged per attempt; a refused password or ACL raises at once.
        """
        await retry_transient(self._ensure_groups, what="start", deadline_s=None, on_retry=_log_unavailable)
        settings = self.settings
        log.info(
            "started", redis=redact_url(settings.redis_url), consumer=settings.consumer,
            group=settings.group, partitions=settings.partitions, until_idle=until_idle,
        )  # fmt: skip
        started_at = time.monotonic()
        ticker = asyncio.create_task(self.health.tick_forever(), name="health-ticker")
        try:
            async with asyncio.TaskGroup() as tasks:
                for k in range(self.keyspace.partitions):
                    tasks.create_task(self._run_partition(k, until_idle), name=f"partition-{k}")
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        elapsed_s = time.monotonic() - started_at
        log.info(
            "stopped", elapsed_s=round(elapsed_s, 3),
            events_per_s=round(self.stats.events / elapsed_s) if elapsed_s else 0,
            **{f: getattr(self.stats, f) for f in WorkerStats.__slots__},
        )  # fmt: skip
        return self.stats

    async def _ensure_groups(self) -> None:
        for dispatch in self.keyspace.all_dispatch():
            try:
                await self.redis.xgroup_create(dispatch, self.settings.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _run_partition(self, k: int, until_idle: bool) -> None:
        delays = Backoff().delays()
        while True:
            partition: Partition | None = None
            try:
                partition = Partition(self, k, await self.link_for(k))
                await partition.serve(until_idle)
                return
            except (RedisError, OSError) as exc:
                if partition is not None and partition.healthy:
                    delays = Backoff().delays()  # it served since the last fault: start the back-off over
                if "NOGROUP" in str(exc):
                    # D(k) or the group was deleted (a flush, an operator): recreate it and go on.
                    log.warning("group-recreated", partition=k, error=str(exc))
                    await self._ensure_groups()
                elif slot_moved(exc) and isinstance(self.redis, NodeRoutedCluster):
                    log.warning("slots-moved", partition=k, error=str(exc))
                    await self.redis.refresh()  # the next link_for() finds the new owner
                elif "WRONGTYPE" in str(exc):  # D(k) itself is not a stream: nothing to serve until fixed
                    log.error(
                        "dispatch-unusable", partition=k, dispatch=self.keyspace.dispatch(k), error=str(exc)
                    )
                elif not is_transient(exc):
                    raise
                self.health.redis_lost(k)
                delay_s = next(delays)
                log.warning("redis-unavailable", partition=k, error=str(exc), retry_in_s=round(delay_s, 3))
            finally:
                if partition is not None:
                    partition.drop()
            if self.stopping:
                return
            await self.sleep_unless_stopped(delay_s)

    async def link_for(self, k: int) -> NodeLink:
        """The node link of partition `k`: the client itself on a single Redis, else its slot's master."""
        node = await node_for(self.redis, self.keyspace.dispatch(k))
        if (link := self._links.get(id(node))) is None:
            settings, wire = self.settings, RawCommands(node)
            publisher = FramePublisher(
                wire, node, self.redis, self.keyspace,
                group=settings.group, consumer=settings.consumer, retention_s=settings.retention_s,
                live_publish=live_publish_command(self.redis),
                dead_letters_in_script=not isinstance(self.redis, NodeRoutedCluster),
            )  # fmt: skip
            leases = Leases(
                node, group=settings.group, consumer=settings.consumer,
                takeover_after_ms=settings.takeover_after_ms,
            )  # fmt: skip
            await leases.load_script()
            await publisher.load_script()
            link = self._links[id(node)] = NodeLink(node, wire, publisher, leases)
        return link

    # -- capacity, shared by the partitions ---------------------------------

    def reserve_capacity(self) -> int:
        """Room for new messages, reserved until `settle_capacity`."""
        settings = self.settings
        room = settings.max_open_messages - self.open_messages - self._reserved
        # A fair share per claim, so one partition's claim in flight can't starve the others.
        share = max(1, settings.max_open_messages // settings.partitions)
        want = max(0, min(settings.claim_count, room, share))
        self._reserved += want
        return want

    def room(self) -> bool:
        """Whether one more message may open now."""
        return self.open_messages + self._reserved < self.settings.max_open_messages

    def settle_capacity(self, reserved: int) -> None:
        """End a reservation: what it opened is counted in `held` by now."""
        self._reserved -= reserved

    def capacity_freed(self) -> None:
        """Held messages ended or were dropped: wake partitions waiting for room."""
        self._capacity_freed.set()

    async def wait_for_capacity(self) -> None:
        """Wait until a message is released (or `block_ms` passes)."""
        self._capacity_freed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._capacity_freed.wait(), self.settings.block_ms / 1000)

    async def sleep_unless_stopped(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking at once when `stop()` is called."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), max(0.0, seconds))

    # -- what a fault dropped --------------------------------------------------

    def remember_deliveries(self, k: int, leases: list[tuple[bytes, int]]) -> None:
        """Keep the delivery counts of what partition `k` held when a fault dropped it."""
        self.remembered_deliveries.update({(k, entry_id): deliveries for entry_id, deliveries in leases})

    def forget_remembered(self, k: int) -> None:
        """Partition `k` has re-read all its own pending entries: what was not among them is gone."""
        for key in [key for key in self.remembered_deliveries if key[0] == k]:
            del self.remembered_deliveries[key]

    # -- bounded growth ------------------------------------------------------

    async def trim_dispatch(self, dispatch: str) -> None:
        """Trim `D(k)` below the oldest entry any group still needs (pending or not yet delivered)."""
        groups = await self.redis.xinfo_groups(dispatch)
        floors: list[tuple[int, int]] = []
        for group in groups:
            summary = await self.redis.xpending(dispatch, group["name"])
            oldest = summary["min"] if summary["pending"] else group["last-delivered-id"]
            floors.append(parse_entry_id(oldest))
        if floors:
            ms, seq = min(floors)
            await self.redis.xtrim(dispatch, minid=f"{ms}-{seq}", approximate=True)


def _log_unavailable(exc: BaseException, delay_s: float) -> None:
    log.warning("redis-unavailable", error=str(exc), retry_in_s=round(delay_s, 3))
