"""A local Redis Cluster the tests own: N masters (no replicas) on free loopback ports.

Each node is a `tests.redis_process.start_redis_server` process with cluster mode on, in
its own subdirectory; `redis-cli --cluster create` assigns the slots, and the start waits
(polling, to a deadline) until every node sees all 16384 slots served and the cluster ok.
No pytest here: `tests/conftest.py` wraps it in the `redis_cluster` fixture.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.redis_process import RedisServer, RedisStartError, free_port, stop_redis_server
from tests.redis_process import start_redis_server as _start_node

HOST = "127.0.0.1"
SLOTS = 16384

# start_redis_server already passes `--save "" --appendonly no`. The cluster bus gets its
# own free port (`cluster-port`, Redis >= 7.0) instead of the default port + 10000, which
# may be taken, or above 65535 for a port from the ephemeral range.
CLUSTER_ARGS = (
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "2000",
)


class ClusterStartError(RedisStartError):
    """A node did not start, `redis-cli --cluster create` failed, or the cluster never became ok."""


@dataclass(frozen=True)
class LocalCluster:
    """A Redis Cluster of `nodes` (all masters), started by `start_redis_cluster`."""

    nodes: list[RedisServer]
    directories: list[Path]

    @property
    def seed(self) -> tuple[str, int]:
        """(host, port) of the first node, to bootstrap a cluster client from."""
        return HOST, self.nodes[0].port

    @property
    def url(self) -> str:
        return f"redis+cluster://{HOST}:{self.nodes[0].port}/0"

    def flush(self) -> None:
        """FLUSHALL on every master (every node is one: the cluster has no replicas)."""
        for node in self.nodes:
            with redis.Redis(host=HOST, port=node.port, socket_timeout=5) as client:
                client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            stop_redis_server(node)


def _logs_tail(directories: list[Path], chars: int = 1500) -> str:
    parts = []
    for directory in directories:
        log = directory / "redis.log"
        text = log.read_text(errors="replace") if log.exists() else "(no log)"
        parts.append(f"--- {directory.name} ---\n{text[-chars:]}")
    return "\n".join(parts)


def _node_problem(port: int, masters: int) -> str | None:
    """Why this node does not yet see a complete, ok cluster; None once it does."""
    with redis.Redis(host=HOST, port=port, socket_timeout=1, decode_responses=True) as client:
        info_text: str = client.execute_command("CLUSTER", "INFO")
        info = dict(line.split(":", 1) for line in info_text.splitlines() if ":" in line)
        if info.get("cluster_state") != "ok":
            return f"cluster_state:{info.get('cluster_state')}"
        if int(info.get("cluster_known_nodes", 0)) != masters:
            return f"cluster_known_nodes:{info.get('cluster_known_nodes')}"
        slots: list[list[object]] = client.execute_command("CLUSTER", "SLOTS")
        covered = sum(int(str(entry[1])) - int(str(entry[0])) + 1 for entry in slots)
        if covered != SLOTS or len(slots) < masters:
            return f"CLUSTER SLOTS covers {covered} slots in {len(slots)} ranges"
    return None


def start_redis_cluster(directory: Path, masters: int = 3, ready_timeout_s: float = 30.0) -> LocalCluster:
    """Start `masters` cluster-mode redis-servers under `directory`, create the cluster, wait until ok.

    Raises:
        ClusterStartError: a node did not start, `redis-cli` is missing or failed, or not every
            node saw `cluster_state:ok` and all 16384 slots within `ready_timeout_s`. The message
            carries the tail of every node's log. Nodes already started are stopped first.
    """
    cli = shutil.which("redis-cli")
    if cli is None:
        raise ClusterStartError("redis-cli not found: 'apt-get install -y redis-tools' (or redis-server)")
    nodes: list[RedisServer] = []
    directories: list[Path] = []
    try:
        for index in range(masters):
            node_dir = directory / f"node-{index}"
            node_dir.mkdir(parents=True, exist_ok=True)
            directories.append(node_dir)
            port = free_port()
            bus_port = free_port()
            while bus_port == port:
                bus_port = free_port()
            nodes.append(_start_node(node_dir, *CLUSTER_ARGS, "--cluster-port", str(bus_port), port=port))

        addresses = [f"{HOST}:{node.port}" for node in nodes]
        command = [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"]
        try:
            create = subprocess.run(command, capture_output=True, text=True, timeout=ready_timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise ClusterStartError(
                f"redis-cli --cluster create took over {ready_timeout_s} s\n{_logs_tail(directories)}"
            ) from exc
        if create.returncode != 0:
            raise ClusterStartError(
                f"redis-cli --cluster create exited {create.returncode}:\n"
                f"{create.stdout[-2000:]}{create.stderr[-2000:]}\n{_logs_tail(directories)}"
            )

        deadline = time.monotonic() + ready_timeout_s
        while True:
            problems: dict[int, str] = {}
            for node in nodes:
                try:
                    problem = _node_problem(node.port, masters)
                except redis.RedisError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                if problem is not None:
                    problems[node.port] = problem
            if not problems:
                return LocalCluster(nodes, directories)
            if time.monotonic() > deadline:
                raise ClusterStartError(
                    f"cluster of ports {[n.port for n in nodes]} not ok after {ready_timeout_s} s: "
                    f"{problems}\n{_logs_tail(directories)}"
                )
            time.sleep(0.05)
    except BaseException as exc:
        for node in nodes:
            stop_redis_server(node)
        if isinstance(exc, RedisStartError) and not isinstance(exc, ClusterStartError):
            raise ClusterStartError(f"{exc}\n{_logs_tail(directories)}") from exc
        raise
