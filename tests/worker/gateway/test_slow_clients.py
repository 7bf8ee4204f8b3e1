"""Clients that never read are cut off, and the gateway's memory stays bounded meanwhile."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable

import httpx
from redis.asyncio import Redis

from lcstream.streams.frames import FrameKind
from lcstream.streams.reader import read_frames
from tests.conftest import WorkerProcess
from tests.faults.support import Gate, stream_message
from tests.helpers import wait_for
from tests.worker.gateway.conftest import SpawnGateway
from tests.worker.gateway.support import frames_of, live_form, metric, read_all, text_events

STALLED = 50
BUFFER_FRAMES = 100
PIECES = 1200  # 1,200 text frames of ~2 kB: 2.4 MB per client, far more than sockets and queues hold
MAX_GROWTH_MB = 50


async def open_stalled(port: int, path: str) -> asyncio.StreamWriter:
    """A client that sends its request and never reads: a small receive buffer, so it stalls soon."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    _, writer = await asyncio.open_connection(sock=sock)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    return writer


async def test_clients_that_never_read_are_cut_off_and_memory_stays_bounded(
    real_redis: Redis, spawn_worker: Callable[..., WorkerProcess], spawn_gateway: SpawnGateway
) -> None:
    gateway = await spawn_gateway(
        LCSTREAM_GATEWAY_CLIENT_BUFFER=str(BUFFER_FRAMES), LCSTREAM_GATEWAY_MAX_CLIENT_STREAMS="100"
    )
    spawn_worker(LCSTREAM_MAX_EVENT_BYTES=str(8 << 20))  # message-finish carries the whole 2.4 MB text
    message_id = "gw-stalled"
    path = f"/v1/messages/{message_id}/stream"
    pieces = [f"{i:05d} " + "lorem ipsum dolor sit amet " * 75 for i in range(PIECES)]
    gate = Gate(at=3)
    producer = asyncio.create_task(
        stream_message(real_redis, message_id, text_events(message_id, pieces), pace_s=0, gate=gate)
    )
    await asyncio.wait_for(gate.reached.wait(), 10)
    stalled = [await open_stalled(gateway.port, path) for _ in range(STALLED)]
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=120) as client:
            healthy = asyncio.create_task(read_all(client, path))
            await wait_for(
                lambda: _metric_is(client, "lcstream_gateway_sse_clients", STALLED + 1),
                what="every client connected",
            )
            before = gateway.memory_kb()
            gate.opened.set()
            await wait_for(
                lambda: _metric_is(client, "lcstream_gateway_clients_cut_total", STALLED),
                timeout_s=60, what="the stalled clients cut off",
            )  # fmt: skip
            await producer
            received = await healthy
            after = gateway.memory_kb()
            assert (
                await metric(client, "lcstream_gateway_clients_cut_total") == STALLED
            )  # not the healthy one
            await wait_for(
                lambda: _metric_is(client, "lcstream_gateway_sse_clients", 0), what="streams closed"
            )
    finally:
        for writer in stalled:
            writer.close()
        await asyncio.gather(*(writer.wait_closed() for writer in stalled), return_exceptions=True)
    assert gateway.stop() == -signal.SIGTERM  # uvicorn shuts down, then re-raises the signal it caught
    log = gateway.log_path.read_text()
    assert "ERROR" not in log and "Traceback" not in log, log[-3000:]  # cutting off is not an error
    frames = await read_frames(real_redis, message_id)
    assert frames[-1].kind is FrameKind.OUTPUT and len(frames) > PIECES
    assert frames_of(received) == live_form(frames)  # the healthy client was not held back
    growth_mb = (after["VmRSS"] - before["VmRSS"]) / 1024
    peak_growth_mb = (after["VmHWM"] - before["VmRSS"]) / 1024
    print(
        f"\ngateway RSS before {before['VmRSS'] / 1024:.1f} MB, after {after['VmRSS'] / 1024:.1f} MB "
        f"(+{growth_mb:.1f} MB), peak {after['VmHWM'] / 1024:.1f} MB (+{peak_growth_mb:.1f} MB); "
        f"{STALLED} stalled clients cut off, {len(frames)} frames of "
        f"{sum(len(p) for p in pieces) / 1e6:.1f} MB text streamed"
    )
    assert peak_growth_mb < MAX_GROWTH_MB


async def _metric_is(client: httpx.AsyncClient, name: str, value: float) -> bool:
    return await metric(client, name) == value
