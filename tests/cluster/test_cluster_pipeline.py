"""Acceptance: lcstream end to end on a 3-master Redis Cluster.

Partitions spread over the masters (hash tag `{k}` per partition); producers
write through the cluster client, two `lcstream worker` processes serve every
partition (one `XREAD` per partition on the master that owns it, fenced scripts
on one slot, live frames by sharded pub/sub), and clients read back through
`attach()` (a real `AsyncChatModelStream`) and `subscribe()` (`SSUBSCRIBE`).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import message_to_dict

from lcstream.streams.attach import attach
from lcstream.streams.cluster import LiveSubscription, NodeRoutedCluster
from lcstream.streams.connection import connect
from lcstream.streams.frames import Frame
from lcstream.streams.keys import Keyspace, partition_of
from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_frames
from lcstream.streams.subscribe import subscribe
from tests.conftest import conformance_cases
from tests.faults.support import (
    assert_all_match_oracle,
    message_events,
    stream_message,
    wait_for_log,
)
from tests.helpers import all_outcomes, deltas_of, settings_for, wait_for
from tests.integration.processes import Workers
from tests.worker.gateway.support import frames_of, live_form, metric, read_all, serve_in_process

PARTITIONS = 8
KEYSPACE = Keyspace("lcstream", PARTITIONS)
CASES = conformance_cases()


@pytest.fixture
async def cluster(cluster_url: str) -> AsyncIterator[NodeRoutedCluster]:
    client = connect(cluster_url)
    assert isinstance(client, NodeRoutedCluster)
    yield client
    await client.aclose()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    with Workers(tmp_path) as started:
        yield started


def worker_env(cluster_url: str, consumer: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LCSTREAM_")}
    env.update(
        LCSTREAM_REDIS_URL=cluster_url,
        LCSTREAM_PARTITIONS=str(PARTITIONS),
        LCSTREAM_CONSUMER=consumer,
        LCSTREAM_BLOCK_MS="100",
        LCSTREAM_TAKEOVER_AFTER_MS="1000",
        LCSTREAM_LOG_FORMAT="json",
    )
    return env


def follow(cluster: NodeRoutedCluster, message_id: str) -> asyncio.Task[list[Frame]]:
    """A client following M with `subscribe()` (SSUBSCRIBE on the master of its slot) to the end."""

    async def frames() -> list[Frame]:
        return [frame async for frame in subscribe(cluster, message_id, keyspace=KEYSPACE)]

    return asyncio.create_task(frames())


async def test_partitions_spread_over_every_master(cluster: NodeRoutedCluster) -> None:
    await cluster.initialize()
    owners = {cluster.get_node_from_key(dispatch).name for dispatch in KEYSPACE.all_dispatch()}  # type: ignore[union-attr]
    assert len(owners) == 3


async def test_conformance_cases_through_the_cluster(
    cluster: NodeRoutedCluster, cluster_url: str, workers: Workers
) -> None:
    # Subscribers first: they see every frame live (or catch up from O(M)) through SSUBSCRIBE.
    followers = {case["message_id"]: follow(cluster, case["message_id"]) for case in CASES}
    probe = await LiveSubscription.open(cluster, KEYSPACE.message(CASES[0]["message_id"]).live)
    for name in ("a", "b"):
        workers.start(worker_env(cluster_url, f"cluster-{name}"))
    for case in CASES:
        await publish_events(cluster, case["events"], message_id=case["message_id"], keyspace=KEYSPACE)

    # Frames are published on the shard: a bare SSUBSCRIBE on the slot's master hears them.
    first = await probe.get(timeout_s=30)
    await probe.aclose()
    assert first is not None
    assert Frame.from_live(first).seq == 1
    for case in CASES:
        message_id, expected = case["message_id"], case["expected"]
        live = await asyncio.wait_for(followers[message_id], timeout=30)
        stored = await read_frames(cluster, message_id, KEYSPACE)
        assert live == stored
        assert deltas_of(stored) == {k: expected[k] for k in deltas_of(stored)}
        async with attach(cluster, message_id, keyspace=KEYSPACE) as stream:
            if "output" in expected:
                assert [delta async for delta in stream.text] == expected["text_deltas"]
                assert message_to_dict(await stream.output) == expected["output"]
            else:
                with pytest.raises(RuntimeError, match=expected["error"]):
                    await stream.output


async def test_a_hundred_messages_survive_a_kill9_on_the_cluster(
    cluster: NodeRoutedCluster, cluster_url: str, workers: Workers
) -> None:
    rng = random.Random(7)
    events_by_id = {f"cl-{n}": message_events(f"cl-{n}", n, rng, tokens=40) for n in range(100)}
    a = workers.start(worker_env(cluster_url, "cluster-a"))
    b = workers.start(worker_env(cluster_url, "cluster-b"))
    await wait_for_log(a, "started")
    await wait_for_log(b, "started")

    async def produce(n: int, message_id: str) -> None:
        await asyncio.sleep(n * 0.02)
        await stream_message(cluster, message_id, events_by_id[message_id], pace_s=0.02, keyspace=KEYSPACE)

    producers = asyncio.gather(*(produce(n, m) for n, m in enumerate(events_by_id)))
    sample = list(events_by_id)[::10]
    followers = {message_id: follow(cluster, message_id) for message_id in sample}
    try:
        await wait_for_log(a, "claimed", timeout_s=20)
        await wait_for_log(b, "claimed", timeout_s=20)
        a.kill()  # kill -9 while it holds streaming messages
        await producers
        await wait_for(
            lambda: all_outcomes(cluster, list(events_by_id), KEYSPACE), timeout_s=60, what="every outcome"
        )
    finally:
        if not producers.done():
            producers.cancel()
    await assert_all_match_oracle(cluster, events_by_id, KEYSPACE)
    for message_id, follower in followers.items():
        stored = await read_frames(cluster, message_id, KEYSPACE)
        assert await asyncio.wait_for(follower, timeout=30) == stored
    pending = [await pending_count_on(cluster, dispatch) for dispatch in KEYSPACE.all_dispatch()]
    assert pending == [0] * PARTITIONS
    assert b.terminate() == 0
    taken = [line for line in b.log_lines() if line["event"] == "taken-over"]
    assert taken, "the survivor took over nothing: the kill hit a worker holding no message"


async def pending_count_on(cluster: NodeRoutedCluster, dispatch: str) -> int:
    summary: dict[str, Any] = await cluster.xpending(dispatch, "workers")
    return int(summary["pending"])


async def test_the_gateway_serves_a_message_from_the_cluster(
    cluster: NodeRoutedCluster, cluster_url: str, workers: Workers
) -> None:
    case = next(c for c in CASES if c["name"] == "plain_text")
    message_id = case["message_id"]
    settings = settings_for(redis_url=cluster_url, partitions=PARTITIONS)
    async with serve_in_process(settings) as gateway:
        streamed = asyncio.create_task(read_all(gateway, f"/v1/messages/{message_id}/stream"))
        await publish_events(cluster, case["events"], message_id=message_id, keyspace=KEYSPACE)
        workers.start(worker_env(cluster_url, "cluster-gw"))
        frames = frames_of(await asyncio.wait_for(streamed, timeout=30))
        assert frames == live_form(await read_frames(cluster, message_id, KEYSPACE))
        outcome = (await gateway.get(f"/v1/messages/{message_id}")).json()
        assert outcome["status"] == "completed"
        assert outcome["message"] == case["expected"]["output"]
        # The backlog gauges read D(k) on its master: one message ran through partition k and was acked.
        partition = f'partition="{partition_of(message_id, PARTITIONS)}"'
        assert await metric(gateway, "lcstream_group_pending", partition) == 0
        assert "lcstream_group_lag{" + partition + "} 0.0" in (await gateway.get("/metrics")).text

        # The operations page's sampler reads every D(k) on its master, and P:workers on its own.
        async def sampled_the_worker() -> bool:
            view = (await gateway.get("/v1/operations")).json()
            listed = {w["consumer"]: w for w in view["workers"]}
            return view["problem"] is None and listed.get("cluster-gw", {}).get("running", False)

        await wait_for(sampled_the_worker, what="the worker on the operations page")
        latest = (await gateway.get("/v1/operations")).json()["samples"][-1]
        assert latest["pending"] == [0] * PARTITIONS and latest["lag"] == [0] * PARTITIONS
