"""Starting the systems under test as subprocesses, and reading their figures back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tests.benchmarks.processes import LoggedProcess, Processes
from tests.benchmarks.results import LCSTREAM_1, LCSTREAM_2, NAIVE

WORKER_COUNT = {LCSTREAM_1: 1, LCSTREAM_2: 2, NAIVE: 1}


def start_workers(
    processes: Processes, system: str, redis_url: str, *, burst: bool, **settings: str
) -> list[LoggedProcess]:
    """The worker processes of `system`; `settings` are `LCSTREAM_*` variables (lcstream only)."""
    args = ["--burst"] if burst else []
    if system == NAIVE:
        return [processes.naive_worker("naive-0", redis_url, *args)]
    return [
        processes.lcstream_worker(f"lcstream-{i}", redis_url, *args, **settings)
        for i in range(WORKER_COUNT[system])
    ]


@dataclass(frozen=True)
class WorkerFigures:
    """What a set of exited workers did, from their `stopped` lines and /proc."""

    events: int
    frames: int
    completed: int
    loop_s: float  # one worker: its own loop time; several: first `started` to last `stopped`
    cpu_s: float  # summed over the workers, from their `started` line to their exit


def summarize(workers: list[LoggedProcess]) -> WorkerFigures:
    """Figures of exited workers (each must have logged `started` and `stopped`)."""
    stopped = []
    for worker in workers:
        if worker.started_line is None or worker.stopped_line is None:
            raise RuntimeError(f"{worker.name} has no started/stopped line: {worker.log_tail()}")
        stopped.append(worker.stopped_line)
    if len(workers) == 1:
        loop_s = float(stopped[0]["elapsed_s"])
    else:
        first = min(_time(worker.started_line) for worker in workers if worker.started_line)
        loop_s = max(_time(line) for line in stopped) - first
    return WorkerFigures(
        events=sum(int(line["events"]) for line in stopped),
        frames=sum(int(line["frames"]) for line in stopped),
        completed=sum(int(line["completed"]) for line in stopped),
        loop_s=loop_s,
        cpu_s=sum(worker.cpu_s() for worker in workers),
    )


def _time(line: dict[str, object]) -> float:
    return datetime.fromisoformat(str(line["timestamp"])).timestamp()
