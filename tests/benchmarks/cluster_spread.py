"""`python -m tests.benchmarks.cluster_spread`: a backlog through a local 3-master Redis Cluster as
the partition count grows, with each master's share of the Redis work (`make bench-cluster`).

Partitions are the unit of spread (every key of partition k carries `{k}`), so with one
partition a single master does all the work; the table shows how the load evens out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from lcstream.streams.connection import connect
from lcstream.streams.keys import Keyspace
from lcstream.streams.publish import publish_events
from tests.benchmarks.measure import RedisCounters
from tests.benchmarks.messages import backlog_message
from tests.benchmarks.processes import Processes
from tests.benchmarks.workers import summarize
from tests.cluster_process import LocalCluster, start_redis_cluster

CONCURRENT_PRODUCERS = 100


@dataclass(frozen=True)
class SpreadRow:
    """One run: the partition count, the throughput, and each master's share of the Redis work."""

    partitions: int
    workers: int
    events: int
    events_per_s: int
    worker_cpu_us_per_event: float
    master_cpu_s: list[float]
    master_command_share: list[float]


async def preload(cluster: LocalCluster, keyspace: Keyspace, messages: int, tokens: int) -> int:
    """Publish the backlog through the cluster client; return its event count."""
    client = connect(cluster.url)
    try:
        all_events = [backlog_message(f"cl-{n}", n, tokens) for n in range(messages)]
        for start in range(0, messages, CONCURRENT_PRODUCERS):
            batch = all_events[start : start + CONCURRENT_PRODUCERS]
            await asyncio.gather(*(publish_events(client, events, keyspace=keyspace) for events in batch))
        return sum(len(events) for events in all_events)
    finally:
        await client.aclose()


async def node_counters(cluster: LocalCluster) -> list[RedisCounters]:
    """Each master's CPU and command counters now."""
    readings = []
    for node in cluster.nodes:
        client = Redis(port=node.port)
        try:
            readings.append(await RedisCounters.read(client))
        finally:
            await client.aclose()
    return readings


async def run_one(directory: Path, partitions: int, workers: int, messages: int, tokens: int) -> SpreadRow:
    """One cluster, one backlog, `workers` burst workers: events/s and each master's share."""
    cluster = start_redis_cluster(directory / "cluster")
    try:
        keyspace = Keyspace("lcstream", partitions)
        events = await preload(cluster, keyspace, messages, tokens)
        before = await node_counters(cluster)
        with Processes(directory / "workers") as processes:
            started = [
                processes.lcstream_worker(
                    f"w{i}", cluster.url, "--burst", LCSTREAM_PARTITIONS=str(partitions)
                )
                for i in range(workers)
            ]
            for worker in started:
                worker.wait_exit(timeout_s=300)
            figures = summarize(started)
        usage = [after.since(then) for after, then in zip(await node_counters(cluster), before, strict=True)]
    finally:
        cluster.stop()
    if figures.events != events or figures.completed != messages:
        raise RuntimeError(
            f"workers did {figures.events}/{events} events, {figures.completed}/{messages} messages"
        )
    total_commands = sum(u.commands for u in usage) or 1
    return SpreadRow(
        partitions=partitions,
        workers=workers,
        events=events,
        events_per_s=round(events / figures.loop_s),
        worker_cpu_us_per_event=round(figures.cpu_s / events * 1e6, 2),
        master_cpu_s=[round(u.cpu_s, 3) for u in usage],
        master_command_share=[round(u.commands / total_commands, 3) for u in usage],
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.cluster_spread", description=__doc__)
    parser.add_argument("--partitions", type=int, nargs="+", default=[1, 3, 12])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--json", type=Path, default=Path("artifacts/bench/cluster.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lcstream-cluster-bench-") as scratch:
        for partitions in args.partitions:
            directory = Path(scratch) / f"p{partitions}"
            rows.append(asyncio.run(run_one(directory, partitions, args.workers, args.messages, args.tokens)))
    table = Table(title=f"{args.messages} x {args.tokens} tokens, {args.workers} workers, 3 masters")
    for column in ("partitions", "events/s", "worker µs/event", "Redis CPU s per master", "command share"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.partitions), f"{row.events_per_s:,}", str(row.worker_cpu_us_per_event),
            " / ".join(map(str, row.master_cpu_s)),
            " / ".join(f"{share:.0%}" for share in row.master_command_share),
        )  # fmt: skip
    Console().print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps([asdict(row) for row in rows], indent=2))


if __name__ == "__main__":
    main()
