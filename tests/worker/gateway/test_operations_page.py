"""The operations page in headless Chromium, under a paced load beside poison: charts that move and match
Redis, the running workers, the dead letters, a retry from the page; and fifty pages costing Redis what
one does."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from playwright.async_api import BrowserContext, Page, async_playwright
from redis.asyncio import Redis

from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import read_outcome
from tests.conftest import WorkerProcess
from tests.faults.support import stream_message
from tests.helpers import wait_for
from tests.worker.engine.mixes import poison, write_mix
from tests.worker.gateway.browser import ARTIFACTS, CHROMIUM_FLAGS, chromium
from tests.worker.gateway.conftest import SpawnGateway
from tests.worker.gateway.support import GatewayProcess, metric, text_events

OPERATOR = "operations-page-operator-token-0123"
PARTITIONS = 2
KEYSPACE = Keyspace(partitions=PARTITIONS)
SAMPLE_S = 1.0
# Workers publish ten times a sample: a rate on the page spans the last 1.0-1.1 s of a worker's clock,
# which the producers' count, taken every 50 ms, can match to within a publication.
FIGURES_S = 0.1
# The commands/s measurement: a sample every 0.5 s over 5 s, so one sample more or less is 10%.
FIFTY_SAMPLE_S, WINDOW_S = 0.5, 5.0
PRODUCERS, TOKENS, PACE_S = 6, 40, 0.01  # about 6 x 100 = 600 events/s while the load runs
FEW_EVENTS = 60  # the first worker's limit: the long poison messages exceed it, valid ones don't
# Where the docs' screenshot goes: `make screenshots` sets it to docs/images.
SCREENSHOTS = Path(os.environ.get("LCSTREAM_SCREENSHOT_DIR", ARTIFACTS))


class PacedLoad:
    """Producers streaming valid messages one after another until stopped, their starts spread over a
    message's length; records when each event and each message was written."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self.sent = [0]
        self.written: list[tuple[float, int]] = []  # (unix time, events written so far), every 50 ms
        self.finished: list[float] = []  # unix time each message's last event was written
        self._stop = asyncio.Event()

    async def _producer(self, p: int) -> None:
        await asyncio.sleep(p * TOKENS * PACE_S / PRODUCERS)  # so messages end one by one, not in bursts
        n = 0
        while not self._stop.is_set():
            message_id = f"ops-load-{p}-{n}"
            words = [f"w{i} " for i in range(TOKENS)]
            await stream_message(self._redis, message_id, text_events(message_id, words),
                                 pace_s=PACE_S, keyspace=KEYSPACE, sent=self.sent)  # fmt: skip
            self.finished.append(time.time())
            n += 1

    async def _count(self) -> None:
        while not self._stop.is_set():
            self.written.append((time.time(), self.sent[0]))
            await asyncio.sleep(0.05)

    def rates(self, start: float, end: float) -> tuple[float, float]:
        """Events and messages written per second between unix times `start` and `end` (events to the
        counter's 50 ms)."""

        def at(t: float) -> tuple[float, int]:
            return next((w, c) for w, c in reversed(self.written) if w <= t)

        (then, before), (now, total) = at(start), at(end)
        messages = sum(start < t <= end for t in self.finished)
        return (total - before) / (now - then), messages / (end - start)

    async def run(self) -> None:
        await asyncio.gather(self._count(), *(self._producer(p) for p in range(PRODUCERS)))

    def stop(self) -> None:
        self._stop.set()


async def chart(page: Page, name: str) -> tuple[int, Any]:
    """A chart's newest sample: its seq and its values, as the page holds them."""
    seq, latest = await page.evaluate(
        "(id) => { const d = document.getElementById(id).dataset; return [Number(d.seq), d.latest]; }",
        f"chart-{name}",
    )
    return seq, orjson.loads(latest)


async def next_sample(page: Page, after: int) -> int:
    await page.wait_for_function(
        f"Number(document.getElementById('chart-pending').dataset.seq) > {after}", timeout=10_000
    )
    return (await chart(page, "pending"))[0]


async def signed_in(context: BrowserContext, url: str) -> Page:
    page = await context.new_page()
    first = await page.goto(f"{url}/operations")
    assert first is not None and first.status == 401  # not even the page without the credential
    await page.fill("#login-token", OPERATOR)
    await page.click("#login-form button")
    await page.locator("#chart-events").wait_for(timeout=10_000)  # the page itself, reloaded
    return page


async def test_the_operations_page_follows_a_loaded_fleet_and_retries_a_dead_letter(
    real_redis: Redis, spawn_worker: Callable[..., WorkerProcess], spawn_gateway: SpawnGateway
) -> None:
    fleet = {"LCSTREAM_PARTITIONS": str(PARTITIONS), "LCSTREAM_FIGURES_INTERVAL_S": str(FIGURES_S)}
    gateway = await spawn_gateway(
        LCSTREAM_GATEWAY_OPERATOR_TOKEN=OPERATOR,
        LCSTREAM_GATEWAY_SAMPLE_INTERVAL_S=str(SAMPLE_S),
        LCSTREAM_GATEWAY_OPERATIONS_WINDOW_S="30",  # the test's whole run fits on the charts
        **fleet,
    )
    first = spawn_worker(
        LCSTREAM_CONSUMER="ops-worker-a", LCSTREAM_MAX_EVENTS_PER_MESSAGE=str(FEW_EVENTS), **fleet
    )
    rng = random.Random(17)
    too_long = [f"ops-long-{i}" for i in range(2)]
    poisoned = [poison("ops-broken", "invalid_json", rng, 1)]
    load = PacedLoad(real_redis)
    running = asyncio.create_task(load.run())
    try:
        for message_id in too_long:  # valid, but longer than the first worker accepts
            words = [f"t{i} " for i in range(FEW_EVENTS * 2)]
            await stream_message(
                real_redis, message_id, text_events(message_id, words), pace_s=0, keyspace=KEYSPACE
            )
        await write_mix(real_redis, poisoned, KEYSPACE)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=chromium(), headless=True, args=CHROMIUM_FLAGS
            )
            try:
                context = await browser.new_context(viewport={"width": 1400, "height": 1500})
                page = await signed_in(context, gateway.url)
                await _charts_move_and_match_redis(page, real_redis, load)
                row = page.locator('#workers tr[data-consumer="ops-worker-a"]')
                await row.wait_for(timeout=10_000)
                assert await row.locator(".state").text_content() == "running"
                dead_ids = [*too_long, "ops-broken"]
                for message_id in dead_ids:
                    await page.locator(f'#dead tr[data-message-id="{message_id}"]').wait_for(timeout=15_000)
                reason = page.locator('#dead tr[data-message-id="ops-long-0"] .reason')
                assert await reason.text_content() == "too_many_events"
                assert await page.text_content("#ops-dead") == "3"

                # Raise the limit: the first worker stops, one with a higher limit takes over.
                first.process.terminate()
                assert await asyncio.to_thread(first.process.wait, 30) == 0  # the load goes on meanwhile
                spawn_worker(LCSTREAM_CONSUMER="ops-worker-b", **fleet)
                await page.locator(
                    '#workers tr[data-consumer="ops-worker-b"] .state:text("running")'
                ).wait_for(timeout=15_000)
                await _retry_from_the_page(page, real_redis, "ops-long-0")
                await _delete_from_the_page(page, real_redis, "ops-broken")
                # The stopped worker handed its entries back and left the group: it leaves the list.
                await page.locator('#workers tr[data-consumer="ops-worker-a"]').wait_for(state="detached")
                os.makedirs(SCREENSHOTS, exist_ok=True)
                await page.screenshot(path=SCREENSHOTS / "operations.png", full_page=True)
            finally:
                await browser.close()
    finally:
        load.stop()
        await running


async def _charts_move_and_match_redis(page: Page, redis: Redis, load: PacedLoad) -> None:
    """Three samples, each read from the page and compared with Redis at once; the values change."""
    seq = await next_sample(page, 0)
    await wait_for(lambda: _has_rate(page), timeout_s=15, what="a rate on the page")
    await wait_for(lambda: _ran_for(load, 2.5), timeout_s=15, what="2.5 s of load")
    seen = []
    for _ in range(3):
        seq = await next_sample(page, seq)
        _, pending = await chart(page, "pending")
        _, lag = await chart(page, "lag")
        _, events = await chart(page, "events")
        sampled_at = (
            await page.evaluate("Number(document.getElementById('chart-events').dataset.time)") / 1000
        )
        _, ended = await chart(page, "ended")
        _, delay = await chart(page, "delay")
        groups = [(await redis.xinfo_groups(d))[0] for d in KEYSPACE.all_dispatch()]
        written, finished = load.rates(sampled_at - SAMPLE_S - FIGURES_S / 2, sampled_at - FIGURES_S / 2)
        # Tolerances: pending and lag move with every message started or ended between the page's
        # sample and this read (about 20 a second here): within 4 per partition. Events/s is the
        # worker's last second against what the producers wrote in the same second: within 20%; messages
        # completed/s against the messages the producers finished in it: within 3 (a message at either
        # edge, and the ms from a message's last event to its outcome).
        for on_page, in_redis in zip(pending, [g["pending"] for g in groups], strict=True):
            assert abs(on_page - in_redis) <= 4, (pending, groups)
        for on_page, in_redis in zip(lag, [g["lag"] for g in groups], strict=True):
            assert abs(on_page - in_redis) <= 4, (lag, groups)
        assert abs(events - written) <= 0.2 * written, (events, written)
        assert abs(ended["completed"] - finished) <= 3, (ended, finished)
        assert 0 < delay["p50_s"] <= delay["p99_s"] <= 1.0, delay  # producer to frames, live: well under 1 s
        seen.append((events, tuple(pending), orjson.dumps(ended)))
        print(f"\nsample {seq}: events/s {events} (producers {written:.0f}); completed/s "
              f"{ended['completed']} (producers {finished:.0f}); pending {pending} (Redis "
              f"{[g['pending'] for g in groups]}); lag {lag} (Redis {[g['lag'] for g in groups]}); "
              f"delay p50/p99 {delay['p50_s']:.4f}/{delay['p99_s']:.4f} s")  # fmt: skip
    assert len(set(seen)) == 3, seen  # the charts moved: three different samples


async def _ran_for(load: PacedLoad, seconds: float) -> bool:
    return len(load.written) > 1 and load.written[-1][0] - load.written[0][0] >= seconds


async def _has_rate(page: Page) -> bool:
    return bool((await chart(page, "events"))[1])


async def _retry_from_the_page(page: Page, redis: Redis, message_id: str) -> None:
    await page.click(f'#dead tr[data-message-id="{message_id}"] .open-letter')
    await page.locator("#dead-detail").wait_for(state="visible")
    await page.wait_for_function("document.querySelectorAll('#dead-events .event').length > 0")
    stored = await redis.xlen(KEYSPACE.message(message_id).events)
    assert await page.locator("#dead-events .event").count() == stored
    await page.click("#dead-retry")
    await page.locator("#confirm").wait_for(state="visible")
    assert message_id in (await page.text_content("#confirm-text") or "")
    await page.click("#confirm-yes")
    await page.wait_for_function(
        "document.getElementById('dead-result').textContent.includes('announced again')", timeout=10_000
    )

    async def completed() -> bool:
        outcome = await read_outcome(redis, message_id, keyspace=KEYSPACE)
        return outcome is not None and outcome.status == "completed"

    await wait_for(completed, timeout_s=20, what=f"{message_id} completed after the retry")
    await page.locator(f'#dead tr[data-message-id="{message_id}"]').wait_for(state="detached", timeout=10_000)
    assert await page.text_content("#ops-dead") == "2"


async def _delete_from_the_page(page: Page, redis: Redis, message_id: str) -> None:
    row = page.locator(f'#dead tr[data-message-id="{message_id}"]')
    await row.locator(".open-letter").click()
    await page.wait_for_function(
        f"document.getElementById('dead-detail-id').textContent === '{message_id}'", timeout=10_000
    )
    await page.click("#dead-delete")
    await page.click("#confirm-no")  # asked, and told no: nothing happens
    assert await page.locator("#confirm").is_hidden() and await redis.xlen(KEYSPACE.dead) == 2
    await page.click("#dead-delete")
    await page.click("#confirm-yes")
    await page.wait_for_function(
        "document.getElementById('dead-result').textContent === 'deleted 1 dead letter'", timeout=10_000
    )
    await row.wait_for(state="detached", timeout=10_000)
    assert await redis.xlen(KEYSPACE.dead) == 1 and await page.text_content("#ops-dead") == "1"


async def test_fifty_pages_cost_redis_what_one_does(real_redis: Redis, spawn_gateway: SpawnGateway) -> None:
    for dispatch in KEYSPACE.all_dispatch():  # the group a worker would create: each sample reads it all
        await real_redis.xgroup_create(dispatch, "workers", id="0", mkstream=True)
    gateway = await spawn_gateway(
        LCSTREAM_GATEWAY_OPERATOR_TOKEN=OPERATOR,
        LCSTREAM_PARTITIONS=str(PARTITIONS),
        LCSTREAM_GATEWAY_SAMPLE_INTERVAL_S=str(FIFTY_SAMPLE_S),
    )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium(), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            context = await browser.new_context()
            pages = [await signed_in(context, gateway.url)]
            one = await _redis_and_gateway_rates(real_redis, gateway)
            pages += await asyncio.gather(*(_watching(context, gateway.url) for _ in range(49)))
            fifty = await _redis_and_gateway_rates(real_redis, gateway)
        finally:
            await browser.close()
    print(f"\nRedis commands/s: 1 page {one[0]:.1f}, 50 pages {fifty[0]:.1f}; "
          f"/v1/operations requests/s: {one[1]:.1f} vs {fifty[1]:.1f}")  # fmt: skip
    per_sample = 3 + 2 * PARTITIONS
    assert fifty[1] >= 25 * one[1]  # the fifty pages do poll ...
    assert abs(fifty[0] - one[0]) * WINDOW_S <= per_sample  # ... yet Redis sees one sampler: ±1 sample
    assert abs(one[0] - per_sample / FIFTY_SAMPLE_S) * WINDOW_S <= per_sample  # the cost gateway.md states


async def _watching(context: BrowserContext, url: str) -> Page:
    """Another page of the signed-in browser on the operations page, once it drew a sample."""
    page = await context.new_page()
    await page.goto(f"{url}/operations")
    await page.wait_for_function("Number(document.getElementById('chart-events').dataset.seq) > 0")
    return page


async def _redis_and_gateway_rates(redis: Redis, gateway: GatewayProcess) -> tuple[float, float]:
    """Commands/s Redis served (INFO's own left out) and `/v1/operations` requests/s the gateway answered,
    over WINDOW_S; the gateway's /metrics (which reads Redis too) is scraped outside the window."""
    route = 'route="/v1/operations",status="200"'
    headers = {"Authorization": f"Bearer {OPERATOR}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as client:
        polls = await metric(client, "lcstream_gateway_requests_total", route)
        calls, started = await _calls(redis), time.monotonic()
        await asyncio.sleep(WINDOW_S)  # the measuring window, not a synchronization
        calls_after, elapsed_s = await _calls(redis), time.monotonic() - started
        polls_after = await metric(client, "lcstream_gateway_requests_total", route)
    return (calls_after - calls) / elapsed_s, (polls_after - polls) / elapsed_s


async def _calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(int(v["calls"]) for name, v in stats.items() if name != "cmdstat_info")
