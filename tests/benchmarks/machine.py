"""What the benchmark ran on: machine, versions, the lcstream commit, the load around it."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

from tests import procfs
from tests.benchmarks.processes import REPO_ROOT


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, OS, Python, Redis, library versions, git commit, date, load average."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": procfs.cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "redis_server": _redis_version(),
        "langchain_core": version("langchain-core"),
        "redis_py": version("redis"),
        "hiredis": version("hiredis"),
        "lcstream_commit": _git("rev-parse", "--short", "HEAD").strip(),
        "lcstream_changed": _git("status", "--porcelain", "--", "streams", "worker", "config").splitlines(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _redis_version() -> str:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    found = [part.removeprefix("v=") for part in out.split() if part.startswith("v=")]
    return found[0] if found else out.strip()


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True).stdout
