"""What a worker's partitions share: settings, keys, counters, health, open-message capacity, the stop
signal, and the delivery counts a fault dropped.

Each partition loop gets this, not the `Worker` that runs them, so the engine's
modules depend on it one way.
"""

from __future__ import annotations

import asyncio
import contextlib
import math

from lcstream.config import Settings
from lcstream.streams.events import EventLimits
from lcstream.streams.keys import Keyspace
from lcstream.worker.engine.held import Held
from lcstream.worker.engine.load import Load
from lcstream.worker.observability.health import Health
from lcstream.worker.observability.stats import WorkerStats
from lcstream.worker.observability.worker_metrics import WorkerMetrics


class WorkerState:
    """The state a worker's partition loops share."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keyspace = Keyspace.from_settings(settings)
        self.limits = EventLimits(settings.max_event_bytes, settings.max_json_depth)
        self.stats = WorkerStats()
        self.health = Health(settings.partitions)
        self.metrics = WorkerMetrics(self.stats, lambda: self.open_messages, lambda: self.waiting_messages)
        self.held: dict[int, Held] = {}  # what each partition holds
        self.load = Load(settings.target_delay_ms / 1000)
        # Delivery counts of what a partition held when a fault dropped it, by (partition, entry id):
        # re-reading its own pending entries raises them in Redis; the first renewal sets them back.
        self.remembered_deliveries: dict[tuple[int, bytes], int] = {}
        self._reserved = 0
        self._capacity_freed = asyncio.Event()
        self._stopping = asyncio.Event()

    @property
    def open_messages(self) -> int:
        """Messages the worker holds open now."""
        return sum(len(held.open) for held in self.held.values())

    @property
    def waiting_messages(self) -> int:
        """Claimed messages whose first event has not appeared yet."""
        return sum(len(held.waiting) for held in self.held.values())

    @property
    def stopping(self) -> bool:
        """Whether the worker was asked to stop."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Ask every partition to stop; those waiting wake at once."""
        self._stopping.set()
        self.health.stopping = True
        self._capacity_freed.set()

    async def sleep_unless_stopped(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking at once when `stop()` is called."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), max(0.0, seconds))

    # -- capacity, shared by the partitions ---------------------------------

    def reserve_capacity(self, *, new: bool = False) -> int:
        """Room for messages, reserved until `settle_capacity`.

        For `new` messages (not this consumer's own pending ones, not abandoned ones) the step
        shrinks as the worker fills up or nears its delay target, so workers awake at once share a
        burst and the less loaded takes more; over the target it is 0.
        """
        settings, open_now = self.settings, self.open_messages
        room = settings.max_open_messages - open_now - self._reserved
        # A fair share per claim, so one partition's claim in flight can't starve the others.
        share = max(1, settings.max_open_messages // settings.partitions)
        step = settings.claim_count
        if new:
            busy = max(open_now / settings.max_open_messages, self.load.fraction())
            step = 0 if busy > 1.0 else max(1, math.ceil(step * (1.0 - busy)))
        want = max(0, min(step, room, share))
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

    # -- what a fault dropped --------------------------------------------------

    def remember_deliveries(self, k: int, leases: list[tuple[bytes, int]]) -> None:
        """Keep the delivery counts of what partition `k` held when a fault dropped it."""
        self.remembered_deliveries.update({(k, entry_id): deliveries for entry_id, deliveries in leases})

    def forget_remembered(self, k: int) -> None:
        """Partition `k` has re-read all its own pending entries: what was not among them is gone."""
        for key in [key for key in self.remembered_deliveries if key[0] == k]:
            del self.remembered_deliveries[key]
