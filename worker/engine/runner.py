"""The `Worker`: one `Partition` loop per partition, shared capacity, stop and drain.

A signal only calls `stop()`: intake stops at once, open messages get the
grace period to finish, the rest are handed back unacked for a peer, and
`run()` returns. A Redis fault restarts the affected partition with jittered
exponential back-off, never in a tight loop.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from redis.exceptions import RedisError, ResponseError

from lcstream.config import Settings, redact_url
from lcstream.streams import langchain_internals
from lcstream.streams.backoff import Backoff, is_transient, retry_transient
from lcstream.streams.cluster import (
    NodeRoutedCluster,
    RedisClient,
    live_publish_command,
    node_for,
    slot_moved,
)
from lcstream.streams.partition_count import record_partition_count
from lcstream.worker.engine.consumers import IdleConsumers
from lcstream.worker.engine.figures import FiguresPublisher
from lcstream.worker.engine.leases import Leases
from lcstream.worker.engine.link import NodeLink
from lcstream.worker.engine.partition import Partition
from lcstream.worker.engine.publisher import FramePublisher
from lcstream.worker.engine.raw_commands import RawCommands
from lcstream.worker.engine.state import WorkerState
from lcstream.worker.observability.stats import WorkerStats

log = structlog.get_logger("lcstream.worker")


class Worker:
    """Serves the dispatch streams of every partition until stopped (or idle, in burst mode)."""

    def __init__(self, redis: RedisClient, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.state = WorkerState(settings)
        self.keyspace = self.state.keyspace
        self.stats = self.state.stats
        self.health = self.state.health
        self.metrics = self.state.metrics
        self._links: dict[int, NodeLink] = {}  # by id() of the node's client

    @property
    def open_messages(self) -> int:
        """Messages this worker holds open now."""
        return self.state.open_messages

    @property
    def waiting_messages(self) -> int:
        """Claimed messages whose first event has not appeared yet."""
        return self.state.waiting_messages

    @property
    def stopping(self) -> bool:
        """Whether `stop()` was called."""
        return self.state.stopping

    def stop(self) -> None:
        """Stop taking work; open messages get the grace period to finish. Safe from a signal handler."""
        if not self.stopping:
            log.info(
                "stopping", open_messages=self.open_messages, grace_period_s=self.settings.grace_period_s
            )
        self.state.stop()

    async def run(self, *, until_idle: bool = False) -> WorkerStats:
        """Serve until `stop()`, or with `until_idle` until no work is open or waiting.

        Redis unreachable at start (a container up before its Redis) is retried with back-off for as
        long as it takes, a line logged per attempt; a refused password or ACL raises at once.
        """
        langchain_internals.check()  # a langchain-core that moved its internals fails here, not per message
        await retry_transient(self._ensure_groups, what="start", deadline_s=None, on_retry=_log_unavailable)
        settings = self.settings
        log.info(
            "started", redis=redact_url(settings.redis_url), consumer=settings.consumer,
            group=settings.group, partitions=settings.partitions, until_idle=until_idle,
        )  # fmt: skip
        started_at = time.monotonic()
        background = [asyncio.create_task(self.health.tick_forever(), name="health-ticker")]
        figures = FiguresPublisher(self.redis, self.state)
        if settings.figures_interval_s:
            background.append(asyncio.create_task(figures.run(settings.figures_interval_s), name="figures"))
        try:
            async with asyncio.TaskGroup() as tasks:
                for k in range(self.keyspace.partitions):
                    tasks.create_task(self._run_partition(k, until_idle), name=f"partition-{k}")
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if settings.figures_interval_s:
                await figures.withdraw()
        elapsed_s = time.monotonic() - started_at
        log.info(
            "stopped", elapsed_s=round(elapsed_s, 3),
            events_per_s=round(self.stats.events / elapsed_s) if elapsed_s else 0,
            **{f: getattr(self.stats, f) for f in WorkerStats.__slots__},
        )  # fmt: skip
        return self.stats

    async def _ensure_groups(self) -> None:
        await record_partition_count(self.redis, self.keyspace)
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
                partition = Partition(self.state, k, await self.link_for(k))
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
            await self.state.sleep_unless_stopped(delay_s)

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
            consumers = IdleConsumers(
                node, group=settings.group, consumer=settings.consumer,
                idle_s=settings.remove_idle_consumers_after_s,
            )  # fmt: skip
            link = self._links[id(node)] = NodeLink(node, wire, publisher, leases, consumers)
        return link


def _log_unavailable(exc: BaseException, delay_s: float) -> None:
    log.warning("redis-unavailable", error=str(exc), retry_in_s=round(delay_s, 3))
