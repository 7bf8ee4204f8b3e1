"""What Linux's /proc says: a process's CPU time and resident memory, the machine's CPU and busy time."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid`, all threads (a zombie still reports its final figure)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _TICKS_PER_S


def memory_kb(pid: int) -> dict[str, int]:
    """`VmRSS` and `VmHWM` (peak RSS) of `pid`, in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


class MachineCpu:
    """The whole machine's CPU time from /proc/stat: how busy it was between two readings."""

    def __init__(self) -> None:
        self._busy, self._total = _machine_jiffies()

    def busy_fraction(self) -> float:
        """Share of all cores' time spent not idle since this reading was taken (0..1)."""
        busy, total = _machine_jiffies()
        return (busy - self._busy) / max(1, total - self._total)


def _machine_jiffies() -> tuple[int, int]:
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_model() -> str:
    """The CPU's model name."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return "unknown"


def tcp_connections_to(pid: int, port: int) -> int:
    """Established TCP connections of `pid` whose remote end is `port` on this machine (its Redis
    connections, given Redis' port): the process's socket inodes matched in /proc/net/tcp and tcp6."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port, state, inode = int(fields[2].rsplit(":", 1)[1], 16), fields[3], fields[9]
            count += remote_port == port and state == "01" and inode in inodes  # 01: ESTABLISHED
    return count
