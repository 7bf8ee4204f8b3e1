"""The dashboard in a real headless Chromium: a live message appears, grows, and ends as stored."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, async_playwright
from redis.asyncio import Redis

from lcstream.streams.snapshot import read_snapshot
from tests.conftest import WorkerProcess
from tests.faults.support import Gate, stream_message
from tests.worker.gateway.conftest import SpawnGateway
from tests.worker.gateway.support import metric, rich_events

ARTIFACTS = Path(__file__).resolve().parents[3] / "artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",  # the tests may run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """Debian's Chromium; missing, the test fails (it never downloads a browser)."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail(
            "chromium not found: run 'make test' (installs it as root) or 'apt-get install -y chromium'"
        )
    return binary


async def shown(page: Page) -> dict[str, Any]:
    """What the page shows of the selected message."""
    result: dict[str, Any] = await page.evaluate(
        """() => ({
            status: document.getElementById("status").textContent,
            text: document.getElementById("text").textContent,
            frames: Number(document.getElementById("frames").textContent),
            conn: document.getElementById("conn").textContent,
        })"""
    )
    return result


async def test_dashboard_shows_a_message_growing_live_and_its_final_outcome(
    real_redis: Redis,
    spawn_worker: Callable[..., WorkerProcess],
    spawn_gateway: SpawnGateway,
    tmp_path: Path,
) -> None:
    executable = chromium()
    gateway = await spawn_gateway()
    spawn_worker()
    message_id = "dash-weather"
    gate = Gate(at=12)  # the message starts, then waits until the page watches it
    producer = asyncio.create_task(
        stream_message(
            real_redis, message_id, rich_events(message_id, 120), pace_s=0, gate=gate, pace_after_gate_s=0.03
        )
    )
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",  # a fresh --user-data-dir
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 880},
        )
        try:
            page = await browser.new_page()
            await page.goto(gateway.url)
            item = page.locator(f'li[data-message-id="{message_id}"]')
            await item.wait_for(timeout=15_000)  # listed from the worker's `started` notice
            await item.click()
            await page.wait_for_function(
                "document.getElementById('conn').textContent === 'live'", timeout=10_000
            )
            async with httpx.AsyncClient(base_url=gateway.url) as client:
                assert await metric(client, "lcstream_gateway_sse_clients") == 1
            gate.opened.set()

            # Successive looks while it streams: the visible text keeps growing.
            lengths: list[int] = []
            deadline = time.monotonic() + 20
            while (now := await shown(page))["status"] != "completed":
                assert time.monotonic() < deadline, f"still {now['status']} after 20 s"
                if now["status"] == "streaming" and (not lengths or len(now["text"]) > lengths[-1]):
                    lengths.append(len(now["text"]))
                    if len(lengths) == 4:
                        await page.screenshot(path=ARTIFACTS / "dashboard-streaming.png")
                await asyncio.sleep(0.15)
            assert len(lengths) >= 4, lengths  # four ever longer texts, each seen while still streaming
            await producer

            stored = await read_snapshot(real_redis, message_id)
            final = await shown(page)
            assert final["text"] == stored.text and final["frames"] == stored.seq and final["conn"] == "ended"
            assert await page.text_content("#reasoning") == stored.reasoning
            assert await page.text_content(".tool-call .name") == "get_weather"
            assert await page.text_content(".tool-call .args") == '{"city": "Paris", "unit": "celsius"}'
            usage = await page.text_content("#usage")
            assert usage is not None and "21" in usage and "126" in usage and "147" in usage
            assert await page.text_content("#outcome .badge") == "completed"
            listed = page.locator(f'li[data-message-id="{message_id}"] .badge')
            assert await listed.text_content() == "completed"  # the list follows the stream's end
            await page.screenshot(path=ARTIFACTS / "dashboard.png")
            await page.emulate_media(color_scheme="dark")
            await page.screenshot(path=ARTIFACTS / "dashboard-dark.png")
        finally:
            await browser.close()
