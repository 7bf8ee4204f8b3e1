"""A pod's CPU limit for a worker process: a cgroup with a CFS quota, as the kubelet sets one.

On 2 cores a fleet of unlimited workers would share the machine with Redis and
the load, and one worker could use a whole core; giving each worker a fixed
share (default half a core, a `500m` limit) makes "one worker's capacity" a
fixed unit, as it is for pods. Needs root and the cgroup v1 `cpu` controller
(as on this machine); without them the workers run unlimited and the report
says so.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CPU_CGROUP = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 10_000  # a short period: a throttled worker waits at most this long for its next share


class CpuLimits:
    """One cgroup per limited process, removed by `close()`."""

    def __init__(self, cores: float) -> None:
        self.cores = cores
        self.available = os.geteuid() == 0 and (CPU_CGROUP / "cgroup.procs").exists()
        self._groups: list[Path] = []

    def limit(self, pid: int, name: str) -> bool:
        """Put `pid` under a quota of `cores`; False when cgroups are not available."""
        if not self.available:
            return False
        group = CPU_CGROUP / f"lcstream-autoscale-{os.getpid()}-{name}"
        group.mkdir(exist_ok=True)
        (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(round(self.cores * PERIOD_US)))
        (group / "cgroup.procs").write_text(str(pid))
        self._groups.append(group)
        return True

    def close(self) -> None:
        """Remove the cgroups (their processes have exited by now; a busy one is left behind)."""
        for group in self._groups:
            with contextlib.suppress(OSError):
                group.rmdir()
        self._groups.clear()
