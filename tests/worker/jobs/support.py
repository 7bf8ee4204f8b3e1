"""What the job tests share: settings, in-process runs of arq and of the stream worker, the oracle."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq.jobs import Job
from arq.worker import Worker as ArqWorker
from langchain_core.messages import message_to_dict
from redis.asyncio import Redis

from lcstream.config import Settings, load_settings
from lcstream.streams.jobcodec import loads_job
from lcstream.streams.jobqueue import job_client, run_id_of
from lcstream.streams.keys import Keyspace
from lcstream.worker.engine.runner import Worker
from lcstream.worker.jobs.combined import run_jobs, stop_jobs
from lcstream.worker.jobs.generation import load_model
from lcstream.worker.jobs.tasks import create_job_worker
from tests.worker.jobs.models import ALL, FAST

TIMEOUT_S = 60


def job_settings(redis_url: str, **overrides: Any) -> Settings:
    """Settings of an in-process worker of both kinds, allowing every test model."""
    base: dict[str, Any] = {
        "redis_url": redis_url, "consumer": "test-worker", "block_ms": 50, "socket_timeout_s": 5,
        "model": FAST[0], "allowed_models": ALL,
    }  # fmt: skip
    return load_settings(**{**base, **overrides})


async def in_process_output(settings: Settings, model: str, prompt: str, message_id: str) -> dict[str, Any]:
    """What the same model makes of the same prompt in this process, as `message_to_dict`."""
    stream = await load_model(model, settings).astream_events(
        prompt, {"run_id": run_id_of(message_id)}, version="v3"
    )
    return message_to_dict(await stream)


async def run_job_burst(redis: Redis, settings: Settings) -> ArqWorker:
    """Run the queued jobs to completion (arq burst mode); return the arq worker for its counters."""
    jobs = create_job_worker(settings, redis, burst=True, handle_signals=False)
    try:
        await asyncio.wait_for(run_jobs(jobs), TIMEOUT_S)
    finally:
        await stop_jobs(jobs)
    return jobs


async def run_stream_burst(redis: Redis, settings: Settings) -> Worker:
    """Run a stream worker until nothing is open or waiting."""
    worker = Worker(redis, settings)
    await asyncio.wait_for(worker.run(until_idle=True), TIMEOUT_S)
    return worker


@asynccontextmanager
async def serving(redis: Redis, settings: Settings) -> AsyncIterator[tuple[Worker, ArqWorker]]:
    """A stream worker and an arq worker running (not in burst mode) until the block ends."""
    streams = Worker(redis, settings)
    jobs = create_job_worker(settings, redis, handle_signals=False)
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(streams.run())
        tasks.create_task(run_jobs(jobs))
        try:
            yield streams, jobs
        finally:
            streams.stop()
            jobs.handle_sig(signal.SIGTERM)
    await stop_jobs(jobs)


def job_of(redis: Redis, message_id: str, keyspace: Keyspace | None = None) -> Job:
    """The arq job of a message (its job id is the message id)."""
    space = keyspace or Keyspace()
    return Job(message_id, job_client(redis, space), _queue_name=space.job_queue, _deserializer=loads_job)
