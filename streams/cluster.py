"""Redis Cluster: a client that also reaches the master of a key directly, and live-channel pub/sub.

redis-py's asyncio cluster client routes single commands and scripts by key,
but has no transactions, no pub/sub and no raw connection. Everything
lcstream does on one slot at a time (a message's `MULTI` batch, a
partition's `XREAD` and fenced scripts) therefore runs on a plain client of
the master that owns the slot, got from `node_for`; a `MOVED` reply (a slot
moved or a fail-over) makes the caller refresh the slot map and retry.

Live frames use sharded pub/sub on a cluster (`SPUBLISH`/`SSUBSCRIBE`, served
by the shard that owns `L(M)`'s slot, not broadcast to every node); on a
single Redis they stay classic `PUBLISH`/`SUBSCRIBE`, as wire format v1 specifies (docs/protocol.md).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.typing import KeyT

RedisClient = Redis | RedisCluster


class NodeRoutedCluster(RedisCluster):
    """A cluster client that keeps a plain client per master, for commands on one slot."""

    def __init__(self, *, node_options: dict[str, Any], **options: Any) -> None:
        super().__init__(**options)
        self._node_options = node_options
        self._node_clients: dict[tuple[str, int], Redis] = {}

    async def node_for(self, key: KeyT) -> Redis:
        """A client of the master that owns `key`'s slot (by the slot map as last read)."""
        await self.initialize()
        node = self.get_node_from_key(key.decode() if isinstance(key, bytes) else str(key))
        assert node is not None  # get_node_from_key raises for an uncovered slot
        address = (node.host, int(node.port))
        if (client := self._node_clients.get(address)) is None:
            client = Redis(host=node.host, port=int(node.port), **self._node_options)
            self._node_clients[address] = client
        return client

    async def refresh(self) -> None:
        """Read the slot map again (after `MOVED`: a slot moved, or a replica took over)."""
        await self.initialize()
        await self.nodes_manager.initialize()

    async def aclose(self) -> None:
        """Close the per-master clients and the cluster client."""
        clients, self._node_clients = list(self._node_clients.values()), {}
        for client in clients:
            await client.aclose()
        await super().aclose()


def is_cluster(client: RedisClient) -> bool:
    """Whether `client` talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


async def node_for(client: RedisClient, key: KeyT) -> Redis:
    """A plain client that serves `key`: the client itself on a single Redis."""
    if isinstance(client, Redis):
        return client
    if isinstance(client, NodeRoutedCluster):
        return await client.node_for(key)
    raise TypeError("connect with streams.connection.connect() to use a cluster with lcstream")


def single(client: RedisClient, purpose: str) -> Redis:
    """`client` if it serves a single Redis.

    Raises:
        ValueError: it is a cluster client (`purpose` says what needs a single Redis).
    """
    if isinstance(client, Redis):
        return client
    raise ValueError(f"{purpose} need a single Redis, not a Redis Cluster (arq keeps its keys unslotted)")


def slot_moved(exc: BaseException) -> bool:
    """Whether a plain client's error says the slot is served elsewhere or not served right now
    (`MOVED`, `ASK`, `CLUSTERDOWN`, `TRYAGAIN`): read the slot map again and retry."""
    return str(exc).startswith(("MOVED ", "ASK ", "CLUSTERDOWN", "TRYAGAIN"))


async def refresh_slots(client: RedisClient) -> None:
    """After `slot_moved`: read a cluster's slot map again (nothing to do on a single Redis)."""
    if isinstance(client, NodeRoutedCluster):
        await client.refresh()


def live_publish_command(client: RedisClient) -> bytes:
    """The command that publishes on `L(M)`: sharded on a cluster."""
    return b"SPUBLISH" if is_cluster(client) else b"PUBLISH"


class LiveChannel(Protocol):
    """A subscription to one live channel: its next payload, and closing it."""

    async def get(self, timeout_s: float) -> bytes | None: ...

    async def aclose(self) -> None: ...


class LiveChannels(Protocol):
    """What opens live channels: `LiveSubscription` (a connection each), or a multiplexer."""

    async def open(self, client: RedisClient, channel: str) -> LiveChannel: ...


class LiveSubscription:
    """A subscription to one message's live channel `L(M)`, sharded on a cluster."""

    def __init__(self, pubsub: PubSub, channel: KeyT, *, sharded: bool) -> None:
        self._pubsub = pubsub
        self._channel = channel
        self._sharded = sharded

    @classmethod
    async def open(cls, client: RedisClient, channel: KeyT, timeout_s: float = 10.0) -> LiveSubscription:
        """Subscribe and wait for the server's confirmation: only then is no later publish missed."""
        node = await node_for(client, channel)
        subscription = cls(node.pubsub(), channel, sharded=is_cluster(client))
        try:
            if subscription._sharded:  # redis-py's asyncio PubSub has no ssubscribe(): sent as is
                await subscription._pubsub.execute_command("SSUBSCRIBE", channel)
            else:
                await subscription._pubsub.subscribe(channel)
            await subscription._confirmed(timeout_s)
        except BaseException:
            await subscription.aclose()
            raise
        return subscription

    async def get(self, timeout_s: float) -> bytes | None:
        """The next published payload, or None when none came within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while (left_s := deadline - time.monotonic()) > 0:
            message = await self._pubsub.get_message(timeout=left_s)
            if message is not None and message["type"] in ("message", "smessage"):
                data: bytes = message["data"]
                return data
        return None

    async def aclose(self) -> None:
        """Unsubscribe and give the connection back."""
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _confirmed(self, timeout_s: float) -> None:
        wanted = "ssubscribe" if self._sharded else "subscribe"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = await self._pubsub.get_message(timeout=0.5)
            if message is not None and message["type"] == wanted:
                return
        raise TimeoutError(f"no {wanted} confirmation from Redis")
