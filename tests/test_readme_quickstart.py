"""The README's quickstart runs as written: a worker, `publish`, `tail`, `result`, producer.py and
follow.py, then `lcstream serve` and the SSE stream of the message, each a process of its own.

The commands get the session's redis-server through `LCSTREAM_REDIS_URL`, run in a
directory holding `docs/examples/hello.jsonl` and the README's two scripts, and find
`lcstream` and `python` on the PATH, as after `. .venv/bin/activate`. Two changes
only: `lcstream serve` gets `--port` (a free one; 8000 may be taken), and the
`curl` line is fetched with httpx on that port.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from lcstream.streams.keys import Keyspace
from tests.conftest import free_port
from tests.docs_support import HELLO, HELLO_ID, README, section, shell_lines, write_block

# The README's quickstart commands, in order; `M` is the id producer.py printed.
QUICKSTART = [
    "lcstream worker",
    "lcstream publish docs/examples/hello.jsonl",
    f"lcstream tail {HELLO_ID}",
    f"lcstream result {HELLO_ID}",
    "python producer.py",
    "python follow.py M",
    "lcstream serve",
    f"curl -N http://127.0.0.1:8000/v1/messages/{HELLO_ID}/stream",
]
TEXT = "Redis Streams keep every event, so any process can follow this message."
TIMEOUT_S = 60


def test_the_readme_quickstart_is_these_commands() -> None:
    assert shell_lines(section(README, "Quickstart")) == QUICKSTART


class Session:
    """A terminal: a directory, an environment, and the processes started from it."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.env = env
        self.background: list[tuple[subprocess.Popen[bytes], Path]] = []

    def run(self, command: str, **substitutions: str) -> subprocess.CompletedProcess[str]:
        words = [substitutions.get(word, word) for word in shlex.split(command)]
        return subprocess.run(
            words, cwd=self.directory, env=self.env, capture_output=True, text=True, timeout=TIMEOUT_S
        )

    def start(self, command: str, *extra: str) -> subprocess.Popen[bytes]:
        log = self.directory / f"{shlex.split(command)[1]}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*shlex.split(command), *extra], cwd=self.directory, env=self.env, stdout=out, stderr=out
            )
        self.background.append((process, log))
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> int:
        """SIGTERM, as Ctrl-C's sibling, then the exit code."""
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=TIMEOUT_S)

    def log(self, process: subprocess.Popen[bytes]) -> str:
        return next(log for p, log in self.background if p is process).read_text()


# The quickstart as written, with the defaults and with a prefix and partition count of its own: the
# worker, the CLI and the README's Python scripts read the same environment and must agree unprompted.
SETTINGS = [{}, {"LCSTREAM_PREFIX": "acme", "LCSTREAM_PARTITIONS": "4"}]


@pytest.fixture(params=SETTINGS, ids=["defaults", "acme-4-partitions"])
def terminal(worker_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Session]:
    (tmp_path / "docs" / "examples").mkdir(parents=True)
    shutil.copy(HELLO, tmp_path / "docs" / "examples" / HELLO.name)
    write_block("producer.py", tmp_path)
    write_block("follow.py", tmp_path)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    session = Session(tmp_path, {**worker_env, **request.param, "PATH": path, "COLUMNS": "200"})
    yield session
    for process, _ in session.background:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_until_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        assert process.poll() is None, "lcstream serve exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "lcstream serve did not get ready"
        time.sleep(0.05)


def sse_events(body: str) -> list[dict[str, str]]:
    """The events of a Server-Sent Events body, as field -> value."""
    events = []
    for chunk in body.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in chunk.splitlines() if ": " in line)
        if fields:
            events.append(fields)
    return events


def test_the_readme_quickstart_runs(terminal: Session) -> None:
    worker = terminal.start(QUICKSTART[0])

    published = terminal.run(QUICKSTART[1])
    assert (published.returncode, published.stdout.strip()) == (0, HELLO_ID), published.stderr

    tail = terminal.run(QUICKSTART[2])
    assert tail.returncode == 0, tail.stderr
    lines = [line.rstrip() for line in tail.stdout.splitlines()]
    assert lines[0] == f"{HELLO_ID} started"
    assert "thinking: A short answer will do." in lines and TEXT in lines
    assert '-> lookup_docs {"topic": "streams"}' in lines
    assert lines[-1].startswith("completed usage=") and "'total_tokens': 32" in lines[-1]

    stored = terminal.run(QUICKSTART[3])
    assert stored.returncode == 0, stored.stderr
    outcome = json.loads(stored.stdout)
    assert outcome["status"] == "completed"
    assert outcome["message"]["data"]["id"] == HELLO_ID
    assert [c["name"] for c in outcome["message"]["data"]["tool_calls"]] == ["lookup_docs"]

    produced = terminal.run(QUICKSTART[4])
    assert produced.returncode == 0, produced.stderr
    *text, last = produced.stdout.splitlines()
    assert text == [TEXT] and last.startswith("message id: lc_run--")
    message_id = last.removeprefix("message id: ")

    followed = terminal.run(QUICKSTART[5], M=message_id)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.splitlines() == [
        TEXT,
        "frames: 23, the last one output",
        "tool calls: [{'name': 'lookup_docs', 'args': {'topic': 'streams'}, 'id': 'call_demo', "
        "'type': 'tool_call'}]",
        "usage: {'input_tokens': 12, 'output_tokens': 20, 'total_tokens': 32}",
    ]

    port = free_port()
    gateway = terminal.start(QUICKSTART[6], "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(url, gateway)
    assert "<html" in httpx.get(f"{url}/", timeout=10).text.lower()  # the dashboard
    assert httpx.get(f"{url}/v1/messages/{HELLO_ID}", timeout=10).json()["status"] == "completed"
    curl = shlex.split(QUICKSTART[7])
    assert curl[:2] == ["curl", "-N"]
    stream_url = curl[2].replace("http://127.0.0.1:8000", url)
    with httpx.stream("GET", stream_url, timeout=TIMEOUT_S) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()  # the stream ends after the message's last frame
    events = [e for e in sse_events(body) if e.get("event") == "frame"]
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    frames = [json.loads(e["data"]) for e in events]
    assert frames[0]["kind"] == "start" and frames[-1]["kind"] == "output"
    assert "".join(f["data"] for f in frames if f["kind"] == "text") == TEXT

    # uvicorn shuts down cleanly, then re-raises the signal it caught.
    assert terminal.stop(gateway) == -signal.SIGTERM, terminal.log(gateway)
    assert "Application shutdown complete." in terminal.log(gateway)
    assert terminal.stop(worker) == 0, terminal.log(worker)
    assert "dead-lettered" not in terminal.log(worker)  # no wrong_partition: everyone agreed

    # Everything went under the configured prefix, in the configured partitions.
    prefix = terminal.env.get("LCSTREAM_PREFIX", "lcstream")
    space = Keyspace(prefix, int(terminal.env.get("LCSTREAM_PARTITIONS", "1")))
    with redis.Redis.from_url(terminal.env["LCSTREAM_REDIS_URL"]) as client:
        keys = {key.decode() for key in client.scan_iter("*")}
    assert keys and all(key.startswith(f"{prefix}:") for key in keys), sorted(keys)[:5]
    assert {space.message(m).result for m in (HELLO_ID, message_id)} <= keys
    assert f"{prefix}:partitions" in keys
