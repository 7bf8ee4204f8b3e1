"""`P:partitions`: how many partitions the workers of a prefix use, recorded by the first of them.

A producer configured for another number would announce messages in a `D(k)`
the workers read under a different partition function (they dead-letter them
`wrong_partition`), or in one no worker reads at all. So it checks first, and
refuses to write; a worker configured for another number refuses to start.
Changing N means draining every message, stopping every worker, and deleting
the key.
"""

from __future__ import annotations

import weakref

from lcstream.streams.cluster import RedisClient
from lcstream.streams.errors import PartitionCountError
from lcstream.streams.keys import Keyspace

# Per client, the keyspaces whose count was found recorded and equal: checked once, not per message.
_confirmed: weakref.WeakKeyDictionary[RedisClient, set[Keyspace]] = weakref.WeakKeyDictionary()


async def record_partition_count(redis: RedisClient, keyspace: Keyspace) -> None:
    """Record N for the prefix unless one is recorded; raise `PartitionCountError` if another is."""
    await redis.set(keyspace.partitions_key, keyspace.partitions, nx=True)
    _compare(await redis.get(keyspace.partitions_key), keyspace, "this worker")


async def check_partition_count(redis: RedisClient, keyspace: Keyspace) -> None:
    """Raise `PartitionCountError` when the workers recorded another N than `keyspace` has."""
    confirmed = _confirmed.setdefault(redis, set())
    if keyspace in confirmed:
        return
    recorded = await redis.get(keyspace.partitions_key)
    if recorded is not None:  # no worker has run yet: nothing to disagree with
        _compare(recorded, keyspace, "this producer")
        confirmed.add(keyspace)


def _compare(recorded: bytes | str | None, keyspace: Keyspace, who: str) -> None:
    if recorded is not None and int(recorded) != keyspace.partitions:
        raise PartitionCountError(
            f"the workers of prefix {keyspace.prefix!r} use {int(recorded)} partitions "
            f"({keyspace.partitions_key}); {who} is configured for {keyspace.partitions}: "
            "set LCSTREAM_PARTITIONS to match"
        )
