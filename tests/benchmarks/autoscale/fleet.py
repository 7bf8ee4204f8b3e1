"""The simulated Deployment: `lcstream worker` processes brought to a replica count, never waiting on one.

Scaling up starts workers (consumer `auto-w<i>`); scaling down sends SIGTERM to
the newest, which finishes or hands back its open messages within its grace
period, as a terminating pod does. A worker that exits on its own is replaced,
as a Deployment replaces a crashed pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.benchmarks.autoscale.cpu_limit import CpuLimits
from tests.benchmarks.autoscale.worker_delay import free_port
from tests.benchmarks.processes import LoggedProcess, Processes

KILL_AFTER_GRACE_S = 20.0  # past its grace period, a stopping worker gets SIGKILL (the kubelet's job)


@dataclass
class Stopped:
    """How one worker ended."""

    name: str
    started_s: float
    stopped_s: float
    exit_code: int | None
    stop_s: float | None  # SIGTERM to exit, when it was asked to stop
    killed: bool = False
    summary: dict[str, object] = field(default_factory=dict)


class Fleet:
    """Workers of one scenario: `running` (the replicas, oldest first) and `stopping` ones."""

    def __init__(
        self,
        processes: Processes,
        redis_url: str,
        settings: dict[str, str],
        grace_s: float,
        clock: Callable[[], float],
        limits: CpuLimits,
    ) -> None:
        self.processes = processes
        self.clock = clock  # wall clock (unix s) for the record of starts and stops
        self.redis_url = redis_url
        self.settings = settings
        self.grace_s = grace_s
        self.running: list[LoggedProcess] = []
        self.stopping: dict[LoggedProcess, float] = {}  # worker: when SIGTERM was sent
        self.ended: list[Stopped] = []
        self.replicas = 0
        self.limits = limits  # each worker's CPU, as a pod's limit
        self.metrics_ports: dict[LoggedProcess, int] = {}  # where each serves /metrics
        self.crashes = 0
        self._started_at: dict[LoggedProcess, float] = {}
        self._count = 0

    @property
    def ready(self) -> int:
        """Running workers that logged `started`."""
        return sum(worker.started_line is not None for worker in self.running)

    def scale(self, replicas: int) -> None:
        """Start or stop workers until `replicas` run (stopping ones no longer count)."""
        self.replicas = replicas
        while len(self.running) < replicas:
            name = f"auto-w{self._count}"
            self._count += 1
            port = free_port()
            worker = self.processes.lcstream_worker(
                name, self.redis_url, LCSTREAM_METRICS_PORT=str(port), **self.settings
            )
            self.limits.limit(worker.pid, name)
            self.metrics_ports[worker] = port
            self._started_at[worker] = self.clock()
            self.running.append(worker)
        while len(self.running) > replicas:
            worker = self.running.pop()
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
            self.stopping[worker] = time.monotonic()

    def reap(self) -> list[str]:
        """Note workers that exited (replacing crashed ones), SIGKILL stops past their deadline;
        return a note per unexpected event."""
        notes: list[str] = []
        now = time.monotonic()
        for worker in list(self.running):
            if worker.process.poll() is not None:
                self.running.remove(worker)
                self.crashes += 1
                notes.append(f"{worker.name} exited on its own ({worker.process.returncode}): replaced")
                self._end(worker, None)
        for worker, asked in list(self.stopping.items()):
            if worker.process.poll() is not None:
                del self.stopping[worker]
                self._end(worker, now - asked)
                if worker.process.returncode != 0:
                    notes.append(f"{worker.name} exited {worker.process.returncode} after SIGTERM")
            elif now - asked > self.grace_s + KILL_AFTER_GRACE_S:
                worker.kill()
                del self.stopping[worker]
                self._end(worker, now - asked, killed=True)
                notes.append(f"{worker.name} still running {now - asked:.0f} s after SIGTERM: killed")
        self.scale(self.replicas)
        return notes

    def _end(self, worker: LoggedProcess, stop_s: float | None, *, killed: bool = False) -> None:
        worker._reader.join(timeout=1)  # its `stopped` line, if any, is read
        self.ended.append(
            Stopped(
                name=worker.name,
                started_s=self._started_at[worker],
                stopped_s=self.clock(),
                exit_code=worker.process.returncode,
                stop_s=None if stop_s is None else round(stop_s, 2),
                killed=killed,
                summary=dict(worker.stopped_line or {}),
            )
        )

    async def stop_all(self) -> list[str]:
        """SIGTERM every worker and wait for all of them (the end of a scenario); return the notes."""
        self.scale(0)
        notes: list[str] = []
        while self.stopping:
            notes += self.reap()
            await asyncio.sleep(0.1)
        return notes
