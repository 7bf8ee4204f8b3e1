"""What the gateway tests share: an `lcstream serve` process, a minimal SSE client, metrics, workloads."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from langchain_core.language_models._compat_bridge import chunks_to_events
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from lcstream.config import Settings
from lcstream.streams.frames import Frame
from lcstream.streams.snapshot import Snapshot
from lcstream.worker.demo.models import reasoning_chunks, tool_call_chunks, usage_chunk
from lcstream.worker.gateway import create_app
from tests import procfs
from tests.conftest import free_port

LCSTREAM = str(Path(sys.executable).with_name("lcstream"))


class GatewayProcess:
    """An `lcstream serve` subprocess on a free loopback port; its output goes to a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [LCSTREAM, "serve", "--port", str(self.port)], env=env, stdout=self._log, stderr=self._log
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Wait until `/healthz` answers 200; fail with the log if the process exits."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as client:
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"lcstream serve exited: {self.log_path.read_text()[-3000:]}")
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"gateway not ready after {timeout_s}s: {self.log_path.read_text()}")
                await asyncio.sleep(0.05)

    def memory_kb(self) -> dict[str, int]:
        """`VmRSS` (resident now) and `VmHWM` (peak resident) of the process, in kB."""
        return procfs.memory_kb(self.process.pid)

    def stop(self) -> int:
        """SIGTERM, then wait for the exit code (kill after 15 s)."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                return self.process.wait()
        finally:
            self._log.close()


async def metric(client: httpx.AsyncClient, name: str, labels: str = "") -> float:
    """One sample of the gateway's `/metrics` (0 when absent), e.g. `lcstream_gateway_sse_clients`."""
    text = (await client.get("/metrics")).text
    wanted = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(wanted):
            return float(line[len(wanted) :])
    return 0.0


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One server-sent event, parsed minimally."""

    id: str
    event: str
    data: str


async def sse_events(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
) -> AsyncGenerator[SseEvent, None]:
    """The events of one SSE response until the server ends it; fails on a status other than 200."""
    async with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, (response.status_code, await response.aread())
        event_id, kind, data = "", "message", ""
        async for line in response.aiter_lines():
            if not line:
                if data:
                    yield SseEvent(event_id, kind, data)
                kind, data = "message", ""
            elif line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]


async def read_all(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
) -> list[SseEvent]:
    """Every event of one SSE response."""
    return [event async for event in sse_events(client, path, headers)]


def frames_of(events: list[SseEvent]) -> list[tuple[int, dict[str, Any]]]:
    """(SSE id, parsed data) of the `frame` events."""
    return [(int(e.id), orjson.loads(e.data)) for e in events if e.event == "frame"]


def live_form(frames: list[Frame]) -> list[tuple[int, dict[str, Any]]]:
    """What `frames_of` must give for these `O(M)` frames."""
    return [(f.seq, {"seq": f.seq, "kind": f.kind.value, "data": f.data}) for f in frames]


def snapshot_from(data: dict[str, Any]) -> Snapshot:
    """A `Snapshot` back from its `to_dict()` JSON."""
    tools = {c["index"]: {"id": c["id"], "name": c["name"], "args": c["args"]} for c in data["tool_calls"]}
    return Snapshot(
        message_id=data["message_id"], seq=data["seq"], status=data["status"], text=data["text"],
        reasoning=data["reasoning"], tool_calls=tools, metadata=data["metadata"],
        output=data["output"], error=data["error"],
    )  # fmt: skip


def text_events(message_id: str, pieces: list[str]) -> list[dict[str, Any]]:
    """A message whose text arrives in `pieces`, closed with usage, as langchain-core's protocol events."""
    chunks = [AIMessageChunk(content=piece) for piece in pieces] + [usage_chunk(7, len(pieces))]
    generations = iter([ChatGenerationChunk(message=chunk) for chunk in chunks])
    return [dict(event) for event in chunks_to_events(generations, message_id=message_id)]


@asynccontextmanager
async def serve_in_process(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway app under uvicorn in this event loop, on a free port; yields a client of it."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert not task.done(), "uvicorn exited at start-up"
            assert time.monotonic() < deadline, "uvicorn did not start"
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


def rich_events(message_id: str, tokens: int) -> list[dict[str, Any]]:
    """Reasoning, `tokens` words of text, one tool call whose arguments arrive in pieces, then usage."""
    chunks = reasoning_chunks("The user asks about the weather, so answer briefly and then look it up.")
    chunks += [AIMessageChunk(content=f"word{i} ") for i in range(tokens)]
    chunks += tool_call_chunks(
        "get_weather", "call_weather", '{"city": "Paris", "unit": "celsius"}', pieces=6
    )
    chunks.append(usage_chunk(21, tokens + 6))
    generations = iter([ChatGenerationChunk(message=chunk) for chunk in chunks])
    return [dict(event) for event in chunks_to_events(generations, message_id=message_id)]


async def raw_get(port: int, path: str, headers: str = "") -> tuple[int, bytes, float]:
    """Status, body and seconds to the status line of one HTTP/1.0 request (the body ends at close);
    `headers`: more header lines, each ending with CRLF."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
    status_line = await reader.readline()
    answered_s = time.monotonic() - started
    rest = await reader.read()
    writer.close()
    _, body = rest.split(b"\r\n\r\n", 1)
    return int(status_line.split()[1]), body, answered_s
