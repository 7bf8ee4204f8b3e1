"""What a partition uses on the Redis node that owns its hash slot."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from lcstream.worker.engine.consumers import IdleConsumers
from lcstream.worker.engine.leases import Leases
from lcstream.worker.engine.publisher import FramePublisher
from lcstream.worker.engine.raw_commands import RawCommands


@dataclass(frozen=True, slots=True)
class NodeLink:
    """A plain client of the node (the client itself on a single Redis), its raw command path, and
    the publisher, leases and consumer upkeep bound to it. Partitions on the same node share one."""

    redis: Redis
    wire: RawCommands
    publisher: FramePublisher
    leases: Leases
    consumers: IdleConsumers
