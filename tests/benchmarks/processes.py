"""The benchmark's subprocesses: workers, generator, subscriber and redis-servers, all cleaned up on exit.

Every child logs JSON lines to stderr (`lcstream worker` with `LCSTREAM_LOG_FORMAT=json`,
and the benchmark's own processes in the same shape). A reader thread copies them to
a log file and notes two of them: `started` and `stopped` (the process's own
summary). The process's CPU time is read from /proc as each arrives, so start-up
and teardown stay out of the figures. The final CPU time is also read from the
exited process before it is reaped (a zombie still reports it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from tests import procfs
from tests.redis_process import RedisServer, start_redis_server, stop_redis_server

REPO_ROOT = Path(__file__).resolve().parents[2]
LCSTREAM = str(Path(sys.executable).with_name("lcstream"))

# Subscribers never get cut off for lagging: that would turn a slow reader into missing samples.
REDIS_ARGS = ("--client-output-buffer-limit", "pubsub 0 0 0")


def setting_arg(text: str) -> tuple[str, str]:
    """A command line's `LCSTREAM_NAME=VALUE`, for every lcstream worker a benchmark starts."""
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("LCSTREAM_"):
        raise argparse.ArgumentTypeError(f"expected LCSTREAM_NAME=VALUE, got {text!r}")
    return name, value


class ProcessError(RuntimeError):
    """A child did not start, exited badly, or did not stop in time."""


class LoggedProcess:
    """A subprocess whose stderr JSON lines go to `log_path` and are watched for `started`/`stopped`."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.process = subprocess.Popen(
            args, env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        self.pid = self.process.pid
        self.started_line: dict[str, Any] | None = None
        self.stopped_line: dict[str, Any] | None = None
        self.started_cpu_s = 0.0
        self.started_memory_kb: dict[str, int] = {}
        self.stopped_cpu_s: float | None = None
        self.final_cpu_s: float | None = None
        self._started = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, name=f"{name}-stderr", daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        with self.log_path.open("wb") as log:
            for raw in self.process.stderr:
                log.write(raw)
                if not raw.startswith(b"{"):
                    continue
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if line.get("event") == "started" and self.started_line is None:
                    with contextlib.suppress(OSError):  # it may already be gone
                        self.started_cpu_s = procfs.cpu_s(self.pid)
                        self.started_memory_kb = procfs.memory_kb(self.pid)
                    self.started_line = line
                    self._started.set()
                elif line.get("event") == "stopped":
                    with contextlib.suppress(OSError):
                        self.stopped_cpu_s = procfs.cpu_s(self.pid)
                    self.stopped_line = line
        self._started.set()  # EOF: whoever waits for `started` finds out it never came

    def wait_started(self, timeout_s: float = 60.0) -> None:
        """Block until the `started` line; raise if the process exits first or it takes too long."""
        if not self._started.wait(timeout_s) or self.started_line is None:
            raise ProcessError(f"{self.name} did not start within {timeout_s}s: {self.log_tail()}")

    def cpu_s(self) -> float:
        """CPU seconds from the `started` line to the `stopped` line (or to now, or to its exit)."""
        if self.stopped_cpu_s is not None:
            return self.stopped_cpu_s - self.started_cpu_s
        now = self.final_cpu_s if self.final_cpu_s is not None else procfs.cpu_s(self.pid)
        return now - self.started_cpu_s

    def _exited(self) -> bool:
        # WNOWAIT leaves the zombie in place, so its /proc entry (and final CPU time) stays readable.
        return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    def wait_exit(self, timeout_s: float) -> int:
        """Wait until it exits; record its final CPU time; reap it; return its exit code."""
        if self.process.returncode is not None:
            return self.process.returncode
        deadline = time.monotonic() + timeout_s
        while not self._exited():
            if time.monotonic() > deadline:
                raise ProcessError(f"{self.name} still running after {timeout_s}s: {self.log_tail()}")
            time.sleep(0.005)
        self.final_cpu_s = procfs.cpu_s(self.pid)
        code = self.process.wait()
        self._reader.join(timeout=10)
        return code

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, then wait for the exit."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout_s)

    def kill(self) -> None:
        """SIGKILL whatever still runs, and reap it."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)

    def log_tail(self, chars: int = 2000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-chars:]


def lcstream_env(redis_url: str, **settings: str) -> dict[str, str]:
    """This environment without inherited `LCSTREAM_*`, pointed at `redis_url`, JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LCSTREAM_")}
    env.update(
        LCSTREAM_REDIS_URL=redis_url,
        LCSTREAM_LOG_FORMAT="json",
        LCSTREAM_BLOCK_MS="100",  # burst mode notices it is idle within 0.1 s
        LCSTREAM_GRACE_PERIOD_S="2",
    )
    env.update(settings)
    return env


class Processes:
    """Starts the children of one run in `directory`; leaving the block kills any still running."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()  # redis-server changes into its --dir before opening its log
        self.directory.mkdir(parents=True, exist_ok=True)
        self._children: list[LoggedProcess] = []
        self._servers: list[RedisServer] = []
        self._started_servers = 0
        self._copies: list[Path] = []  # snapshot copies, removed on close (the logs stay)

    def redis(self, snapshot: Path | None = None) -> RedisServer:
        """A fresh redis-server (loading `snapshot`, an RDB file, when given) with persistence off."""
        directory = self.directory / f"redis-{self._started_servers}"
        self._started_servers += 1
        directory.mkdir()
        if snapshot is not None:
            shutil.copyfile(snapshot, directory / "dump.rdb")
            self._copies.append(directory / "dump.rdb")
        server = start_redis_server(directory, *REDIS_ARGS, start_timeout_s=120)
        self._servers.append(server)
        return server

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> LoggedProcess:
        """Start a child logging JSON lines to stderr."""
        child = LoggedProcess(name, args, env or dict(os.environ), self.directory / f"{name}.log")
        self._children.append(child)
        return child

    def lcstream_worker(self, name: str, redis_url: str, *args: str, **settings: str) -> LoggedProcess:
        """`lcstream worker` (the black box under test)."""
        env = lcstream_env(redis_url, LCSTREAM_CONSUMER=name, **settings)
        return self.start(name, [LCSTREAM, "worker", *args], env)

    def naive_worker(self, name: str, redis_url: str, *args: str) -> LoggedProcess:
        """The naive reference worker of `tests/benchmarks/naive_worker.py`."""
        module = [sys.executable, "-m", "tests.benchmarks.naive_worker"]
        return self.start(name, [*module, "--redis-url", redis_url, "--consumer", name, *args])

    def close(self) -> None:
        for child in self._children:
            child.kill()
        for server in self._servers:
            stop_redis_server(server)
        for copy in self._copies:
            copy.unlink(missing_ok=True)

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
