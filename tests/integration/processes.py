"""`lcstream` subprocesses on a redis-server a test starts itself (not the session's): env, CLI, workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from tests.conftest import WorkerProcess

LCSTREAM = str(Path(sys.executable).with_name("lcstream"))


def lcstream_env(redis_url: str, **settings: str) -> dict[str, str]:
    """This process's environment without any inherited `LCSTREAM_*`, pointed at `redis_url`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LCSTREAM_")}
    env.update(LCSTREAM_REDIS_URL=redis_url, LCSTREAM_BLOCK_MS="100", LCSTREAM_LOG_FORMAT="json")
    env.update(settings)
    return env


def run_lcstream(*args: str, env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one `lcstream` command to completion."""
    return subprocess.run([LCSTREAM, *args], env=env, capture_output=True, text=True, timeout=timeout_s)


class Workers:
    """Starts `lcstream worker` subprocesses; leaving the block kills any still running."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._started: list[WorkerProcess] = []

    def start(self, env: dict[str, str], *args: str) -> WorkerProcess:
        log_path = self._directory / f"worker-{len(self._started)}.log"
        worker = WorkerProcess(env, log_path, *args)
        self._started.append(worker)
        return worker

    def __enter__(self) -> Workers:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for worker in self._started:
            worker.kill()
