"""What the controller reads each tick: each D(k)'s lag and pending, the workers' CPU, the probe's seconds."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from lcstream.streams.groups import group_backlog, group_consumers
from lcstream.streams.keys import Keyspace
from tests import procfs


@dataclass(frozen=True)
class GroupReading:
    """XINFO of every D(k): lag (None: unknown), pending, entries added, and open messages per consumer."""

    lags: tuple[int | None, ...]
    pending: tuple[int, ...]
    announced: int
    open_by_consumer: dict[str, int]

    @property
    def lag(self) -> int:
        return sum(lag or 0 for lag in self.lags)

    @property
    def open(self) -> int:
        return sum(self.pending)


async def read_group(redis: Redis, keyspace: Keyspace, group: str) -> GroupReading:
    """XINFO GROUPS (through lcstream's `group_backlog`), XINFO STREAM and XINFO CONSUMERS of each D(k)."""
    lags: list[int | None] = []
    pending: list[int] = []
    announced = 0
    by_consumer: dict[str, int] = {}
    for dispatch in keyspace.all_dispatch():
        backlog = await group_backlog(redis, dispatch, group)
        if backlog is None:  # no worker created the group yet
            lags.append(None)
            pending.append(0)
            continue
        lags.append(backlog.lag)
        pending.append(backlog.pending)
        info: dict[str, Any] = await redis.xinfo_stream(dispatch)
        announced += int(info.get("entries-added", 0))
        for consumer in await group_consumers(redis, dispatch, group):
            by_consumer[consumer.name] = by_consumer.get(consumer.name, 0) + consumer.pending
    return GroupReading(tuple(lags), tuple(pending), announced, by_consumer)


class CpuMeter:
    """Each process's CPU use since the previous reading, in percent of the `cores` it requests."""

    def __init__(self, cores: float = 1.0) -> None:
        self._cores = cores
        self._last: dict[int, tuple[float, float]] = {}  # pid: (cpu s, monotonic s)

    def utilization(self, pid: int) -> float | None:
        """Percent since the last call for `pid`; None on the first call (not ready: no full interval)."""
        try:
            cpu = procfs.cpu_s(pid)
        except OSError:  # gone
            self._last.pop(pid, None)
            return None
        now = time.monotonic()
        last = self._last.get(pid)
        self._last[pid] = (cpu, now)
        if last is None or now <= last[1]:
            return None
        return round((cpu - last[0]) / (now - last[1]) / self._cores * 100, 1)


class ProbeReader:
    """The probe's per-second lines, read as they are appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def read(self) -> list[dict[str, Any]]:
        """Every complete line appended since the last call."""
        with contextlib.suppress(FileNotFoundError), self.path.open("rb") as file:
            file.seek(self._offset)
            data = file.read()
            end = data.rfind(b"\n") + 1
            self._offset += end
            return [orjson.loads(line) for line in data[:end].splitlines() if line]
        return []
