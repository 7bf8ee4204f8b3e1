"""The dashboard in a real headless Chromium: a live message appears, grows, and ends as stored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, async_playwright
from redis.asyncio import Redis

from lcstream.streams.keys import Keyspace
from lcstream.streams.publish import publish_events
from lcstream.streams.run_handler import RedisStreamHandler
from lcstream.streams.snapshot import read_snapshot
from lcstream.streams.tokens import MESSAGE_SCOPE, mint_read_token, sign
from tests.conftest import WorkerProcess
from tests.faults.support import Gate, stream_message
from tests.helpers import wait_for
from tests.streams.agent_graph import State, build_graph
from tests.worker.gateway.browser import ARTIFACTS, CHROMIUM_FLAGS, chromium
from tests.worker.gateway.conftest import SpawnGateway
from tests.worker.gateway.support import metric, rich_events, text_events


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


OPERATOR = "dashboard-operator-token-0123456789"
# The stream ended, and the page drew its last frame (drawing waits for an animation frame).
SHOWN_TO_THE_END = """document.getElementById('conn').textContent === 'ended'
    && document.getElementById('status').textContent === 'completed'"""
TOKEN_KEY = "dashboard-signing-key-0123456789abcdef"  # noqa: S105 - a test key


async def test_dashboard_asks_operators_to_sign_in_and_shows_a_viewer_only_their_message(
    real_redis: Redis,
    spawn_worker: Callable[..., WorkerProcess],
    spawn_gateway: SpawnGateway,
) -> None:
    executable = chromium()
    gateway = await spawn_gateway(
        LCSTREAM_GATEWAY_OPERATOR_TOKEN=OPERATOR, LCSTREAM_GATEWAY_TOKEN_KEYS=TOKEN_KEY
    )
    spawn_worker()
    for message_id in ("dash-a", "dash-b"):
        await publish_events(real_redis, text_events(message_id, [f"the secret of {message_id}"]))
    for message_id in ("dash-a", "dash-b"):
        await wait_for(partial(_completed, real_redis, message_id), what=f"{message_id} completed")
    token_b = mint_read_token("dash-b", key=TOKEN_KEY, ttl_s=300)
    expired_b = sign(MESSAGE_SCOPE, "dash-b", key=TOKEN_KEY, ttl_s=-1)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            operator = await (await browser.new_context()).new_page()
            await operator.goto(gateway.url)
            await operator.locator("#login").wait_for(state="visible", timeout=10_000)
            assert await operator.locator("#messages li").count() == 0
            await operator.fill("#login-token", "not-the-operator-token")
            await operator.click("#login-form button")
            await operator.wait_for_function(
                "document.getElementById('login-reason').textContent.includes('not the operator token')"
            )
            await operator.fill("#login-token", OPERATOR)
            await operator.click("#login-form button")
            await operator.locator("#login").wait_for(state="hidden", timeout=10_000)
            item = operator.locator('li[data-message-id="dash-a"]')
            await item.wait_for(timeout=15_000)
            await item.click()
            await operator.wait_for_function(SHOWN_TO_THE_END)
            assert (await shown(operator))["text"] == "the secret of dash-a"

            viewer = await (await browser.new_context()).new_page()
            await viewer.goto(f"{gateway.url}/#m=dash-b&token={token_b}")
            await viewer.wait_for_function(SHOWN_TO_THE_END)
            assert (await shown(viewer))["text"] == "the secret of dash-b"
            assert await viewer.locator("#login").is_hidden()
            assert await viewer.text_content("#poll-state") == "one message (read token)"
            statuses = await viewer.evaluate(
                """async (token) => Promise.all(["/v1/messages/dash-a", "/v1/messages"].map(
                    async (path) => (await fetch(`${path}?token=${token}`)).status))""",
                token_b,
            )
            assert statuses == [403, 403]
            for fragment, refusal in ((f"m=dash-a&token={token_b}", "forbidden"),
                                      (f"m=dash-b&token={expired_b}", "unauthorized")):  # fmt: skip
                stranger = await (await browser.new_context()).new_page()
                await stranger.goto(f"{gateway.url}/#{fragment}")
                await stranger.wait_for_function(
                    f"document.getElementById('conn').textContent === '{refusal}'", timeout=10_000
                )
                assert "secret" not in (await shown(stranger))["text"]
        finally:
            await browser.close()


async def _completed(redis: Redis, message_id: str) -> bool:
    return bool(await redis.exists(Keyspace().message(message_id).result))


async def shown_run(page: Page) -> dict[str, Any]:
    """What the page shows of the selected run: its status, and per node the messages' texts."""
    result: dict[str, Any] = await page.evaluate(
        """() => ({
            status: document.getElementById("run-status").textContent,
            groups: [...document.querySelectorAll(".node-group")].map((group) => [
                group.dataset.node,
                [...group.querySelectorAll(".run-message")].map(
                    (m) => [m.dataset.messageId, m.querySelector(".text").textContent]),
            ]),
        })"""
    )
    return result


async def test_dashboard_shows_a_run_s_messages_grouped_by_node_while_they_stream(
    real_redis: Redis, spawn_worker: Callable[..., WorkerProcess], spawn_gateway: SpawnGateway
) -> None:
    executable = chromium()
    gateway = await spawn_gateway()
    spawn_worker()
    handler = RedisStreamHandler(real_redis, run_id="dash-run", keyspace=Keyspace())
    graph = asyncio.create_task(build_graph(0.08).ainvoke(State(notes=[]), config={"callbacks": [handler]}))
    await wait_for(partial(_run_started, real_redis, "dash-run"), what="the run to start")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = await (await browser.new_context(viewport={"width": 1400, "height": 880})).new_page()
            await page.goto(f"{gateway.url}/#r=dash-run")
            growing: list[int] = []  # the newest message's text, each look while the run still runs
            deadline = time.monotonic() + 30
            while (now := await shown_run(page))["status"] != "completed":
                assert time.monotonic() < deadline, now
                texts = [text for _, messages in now["groups"] for _, text in messages]
                if texts and (not growing or len(texts[-1]) != growing[-1]):
                    growing.append(len(texts[-1]))
                    if len(growing) == 6:
                        await page.screenshot(path=ARTIFACTS / "dashboard-run-streaming.png")
                await asyncio.sleep(0.05)
            await graph
            assert len(growing) >= 6, growing  # texts seen changing while the run streamed
            final = await shown_run(page)
            assert [(node, len(messages)) for node, messages in final["groups"]] == [
                ("plan", 1),
                ("answer", 2),
            ]
            for _, messages in final["groups"]:
                for message_id, text in messages:
                    assert text == (await read_snapshot(real_redis, message_id)).text
            await page.screenshot(path=ARTIFACTS / "dashboard-run.png")
        finally:
            await browser.close()


async def _run_started(redis: Redis, run_id: str) -> bool:
    return bool(await redis.exists(Keyspace().run(run_id).index))
