"""Acceptance: a worker's /metrics counts what it did; the consumer group's lag rises while no worker
runs (read by the gateway, which stays up) and falls when one resumes."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from lcstream.streams.publish import publish_events
from tests.conftest import WorkerProcess, conformance_cases, free_port
from tests.helpers import all_outcomes, settings_for, wait_for
from tests.worker.gateway.support import metric, serve_in_process

CASES = conformance_cases()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_worker_metrics_and_group_lag(
    real_redis: Redis, spawn_worker: Callable[..., WorkerProcess], worker_env: dict[str, str]
) -> None:
    port = free_port()
    for case in CASES:
        await publish_events(real_redis, case["events"], message_id=case["message_id"])
    worker = spawn_worker(LCSTREAM_METRICS_PORT=str(port))
    await wait_for(lambda: all_outcomes(real_redis, [c["message_id"] for c in CASES]), what="outcomes")

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        page = samples((await client.get("/metrics")).text)
    failed = sum("error" in case["expected"] for case in CASES)
    assert page[("lcstream_worker_events_total", ())] == sum(len(c["events"]) for c in CASES)
    assert page[("lcstream_worker_frames_total", ())] > len(CASES)
    assert page[("lcstream_worker_outcomes_total", (("reason", "completed"), ("status", "completed")))] == (
        len(CASES) - failed
    )
    assert (
        page[("lcstream_worker_outcomes_total", (("reason", "overloaded"), ("status", "failed")))] == failed
    )
    assert page[("lcstream_worker_delay_seconds_count", ())] > 0
    assert page[("lcstream_worker_open_messages", ())] == 0
    assert worker.terminate() == 0

    settings = settings_for(redis_url=worker_env["LCSTREAM_REDIS_URL"])
    async with serve_in_process(settings) as gateway:
        lag = 'partition="0"'
        assert await metric(gateway, "lcstream_group_lag", lag) == 0
        waiting = [f"lag-{n}" for n in range(7)]
        for message_id in waiting:
            await publish_events(real_redis, CASES[0]["events"], message_id=message_id)
        assert await metric(gateway, "lcstream_group_lag", lag) == len(waiting)  # no worker runs

        resumed = spawn_worker()

        async def lag_is(value: float) -> bool:
            return await metric(gateway, "lcstream_group_lag", lag) == value

        await wait_for(lambda: lag_is(0), what="the lag to fall once a worker runs")
        await wait_for(lambda: all_outcomes(real_redis, waiting), what="the waiting messages' outcomes")
        assert await metric(gateway, "lcstream_group_pending", lag) == 0
        assert resumed.terminate() == 0
