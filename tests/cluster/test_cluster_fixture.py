"""The local Redis Cluster fixture: a cluster client reaches every master through the seed node."""

from __future__ import annotations

from redis.asyncio.cluster import RedisCluster

from tests.cluster_process import LocalCluster


async def test_cluster_client_reads_and_writes_on_every_master(
    redis_cluster: LocalCluster, cluster_url: str
) -> None:
    assert cluster_url == f"redis+cluster://127.0.0.1:{redis_cluster.nodes[0].port}/0"
    host, port = redis_cluster.seed
    client = RedisCluster(host=host, port=port)
    try:
        await client.initialize()
        assert {(n.host, n.port) for n in client.get_primaries()} == {
            ("127.0.0.1", n.port) for n in redis_cluster.nodes
        }
        owners: dict[str, str] = {}  # key -> name of the master it hashes to
        for tag in range(64):
            key = f"fixture:{{{tag}}}:value"
            node = client.get_node_from_key(key)
            assert node is not None
            owners[key] = node.name
            if len(set(owners.values())) == len(redis_cluster.nodes):
                break
        assert len(set(owners.values())) >= 3

        for key in owners:
            assert await client.set(key, key) is True
        for key in owners:
            assert await client.get(key) == key.encode()
        # Each master holds exactly the keys the client routed to it.
        for master in client.get_primaries():
            expected = sum(1 for name in owners.values() if name == master.name)
            assert await client.execute_command("DBSIZE", target_nodes=master) == expected
    finally:
        await client.aclose()
