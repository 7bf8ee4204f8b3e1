"""`lcstream stats`: the consumer group on every partition, its consumers, dead letters, throughput."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Annotated, Any

import typer

from lcstream.config import load_settings
from lcstream.streams.cluster import RedisClient
from lcstream.streams.groups import group_backlog, group_consumers
from lcstream.streams.keys import Keyspace
from lcstream.worker.cli.common import (
    ConfigOption,
    JsonOption,
    RedisUrlOption,
    out,
    print_json,
    print_rows,
    reports_errors,
    with_redis,
)


@reports_errors
def stats(
    sample_s: Annotated[
        float, typer.Option(min=0, help="Measure throughput over this long (0: skip).")
    ] = 1.0,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Consumer group, pending and lag per partition, consumers, dead letters, throughput."""
    settings = load_settings(config, redis_url=redis_url)

    async def work(redis: RedisClient, keyspace: Keyspace) -> dict[str, Any]:
        first = await _group_rows(redis, keyspace, settings.group)
        started = time.monotonic()
        if sample_s:
            await asyncio.sleep(sample_s)  # the measuring window
            second = await _group_rows(redis, keyspace, settings.group)
            elapsed_s = time.monotonic() - started
            for before, after in zip(first, second, strict=True):
                after["claimed_per_s"] = round(
                    (after["entries_read"] - before["entries_read"]) / elapsed_s, 1
                )
            first = second
        return {
            "group": settings.group,
            "partitions": first,
            "open_messages": sum(p["pending"] for p in first),
            "lag": sum(p["lag"] or 0 for p in first),
            "dead_letters": await redis.xlen(keyspace.dead),
        }

    report = with_redis(settings, work)
    if as_json:
        print_json(report)
        return
    rows = [
        (
            p["partition"], p["length"], p["pending"], p["lag"], p.get("claimed_per_s", "-"),
            ", ".join(f"{c['name']} ({c['pending']}, {c['idle_ms']})" for c in p["consumers"]) or "-",
        )
        for p in report["partitions"]
    ]  # fmt: skip
    columns = ("partition", "dispatch len", "pending", "lag", "claimed/s", "consumers (pending, idle ms)")
    print_rows(f"group {report['group']}: {report['open_messages']} open, lag {report['lag']}", columns, rows)
    out.print(f"dead letters: {report['dead_letters']}", markup=False)


async def _group_rows(redis: RedisClient, keyspace: Keyspace, group: str) -> list[dict[str, Any]]:
    rows = []
    for k, dispatch in enumerate(keyspace.all_dispatch()):
        row: dict[str, Any] = {"partition": k, "length": await redis.xlen(dispatch), "pending": 0,
                               "lag": None, "entries_read": 0, "consumers": []}  # fmt: skip
        if (backlog := await group_backlog(redis, dispatch, group)) is not None:
            row |= {"pending": backlog.pending, "lag": backlog.lag, "entries_read": backlog.entries_read}
            row["consumers"] = [dataclasses.asdict(c) for c in await group_consumers(redis, dispatch, group)]
        rows.append(row)
    return rows
