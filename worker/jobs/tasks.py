"""arq jobs: `generate` (a chat model, teed into Redis), `run_graph` (a LangGraph graph, published as a
run) and `reassemble` (rebuild a stored message).

Run them with `lcstream worker --with-jobs` (beside a stream worker, one
process) or on their own with `arq lcstream.worker.jobs.WorkerSettings`; both read the
`LCSTREAM_*` settings. Jobs and results are JSON (`streams.jobcodec`).

On SIGTERM arq stops taking jobs and gives running ones the grace period
minus one second (`job_grace_s`), then cancels what is left: its message
ends failed with code `cancelled`. The second left over is for a stream
worker in the same process to still commit those messages within its own
grace period.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from arq.worker import Worker as ArqWorker
from arq.worker import func
from langchain_core._api.beta_decorator import LangChainBetaWarning
from redis.asyncio import Redis

from lcstream.config import Settings, load_settings
from lcstream.streams.connection import connect_single_with
from lcstream.streams.jobcodec import dumps_job, loads_job
from lcstream.streams.jobqueue import (
    GENERATE_JOB,
    GRAPH_RUN_JOB,
    REASSEMBLE_JOB,
    ModelInput,
    job_client,
    new_message_id,
)
from lcstream.streams.keys import Keyspace
from lcstream.worker.jobs.generation import Generation, generate_message
from lcstream.worker.jobs.graph_run import GraphRun, run_graph_job
from lcstream.worker.jobs.reassembly import reassemble_message
from lcstream.worker.observability.logs import configure_logging

# How often arq looks for new jobs and for aborts: bounds how long `lcstream cancel` takes.
POLL_DELAY_S = 0.25


def _settings_of(ctx: dict[str, Any]) -> Settings:
    settings = ctx["settings"]
    assert isinstance(settings, Settings)
    return settings


async def generate(
    ctx: dict[str, Any], input: ModelInput, *, model: str | None = None, message_id: str | None = None
) -> dict[str, str]:
    """Run chat model `model` on `input`, teeing its events into message `message_id`.

    Returns `{"message_id", "status"}`: `completed` or `failed`, as the model's
    stream ended. A model error, an abort or the job timeout end M with an
    `error` event (codes `model_error`, `cancelled`). Enqueue it with
    `streams.jobqueue.enqueue_generation`: without a `message_id` the job picks
    one, and the job id is then not M, so `cancel_generation(M)` can't find it.
    """
    settings = _settings_of(ctx)
    job = Generation(message_id or new_message_id(), input, model, int(ctx.get("job_try") or 1))
    return await generate_message(ctx["redis"], _keyspace(settings), settings, job)


async def run_graph(ctx: dict[str, Any], graph: str, input: dict[str, Any], *, run_id: str) -> dict[str, str]:
    """Run graph factory `graph` on `input`, every chat-model call published as run `run_id`.

    Returns `{"run_id", "status"}`: how the run ended. Enqueue it with
    `streams.jobqueue.enqueue_graph_run`; `lcstream cancel R` aborts it.
    """
    settings = _settings_of(ctx)
    job = GraphRun(run_id, graph, input, int(ctx.get("job_try") or 1))
    return await run_graph_job(ctx["redis"], _keyspace(settings), settings, job)


async def reassemble(ctx: dict[str, Any], message_id: str) -> dict[str, Any]:
    """Rebuild an ended message from its stored events; rewrite `R(M)` and `O(M)` if they changed."""
    settings = _settings_of(ctx)
    return await reassemble_message(ctx["redis"], _keyspace(settings), settings, message_id)


def _keyspace(settings: Settings) -> Keyspace:
    return Keyspace.from_settings(settings)


def job_grace_s(settings: Settings) -> int:
    """How long running jobs may finish after SIGTERM: the grace period minus one second."""
    return max(0, math.floor(settings.grace_period_s) - 1)


def worker_options(settings: Settings, redis: Redis) -> dict[str, Any]:
    """The arq `Worker` arguments for these settings, on `redis`'s connection pool."""
    keyspace = _keyspace(settings)
    return {
        "functions": [
            func(generate, name=GENERATE_JOB, timeout=settings.job_timeout_s),
            func(reassemble, name=REASSEMBLE_JOB),
            func(run_graph, name=GRAPH_RUN_JOB, timeout=settings.job_timeout_s),
        ],
        "queue_name": keyspace.job_queue,
        "redis_pool": job_client(redis, keyspace),
        "job_serializer": dumps_job,
        "job_deserializer": loads_job,
        "allow_abort_jobs": True,
        "job_timeout": settings.job_timeout_s,
        "max_tries": settings.job_max_tries,
        "max_jobs": settings.max_jobs,
        "job_completion_wait": job_grace_s(settings),
        "poll_delay": POLL_DELAY_S,
        "keep_result": settings.retention_s,
        "ctx": {"settings": settings},
    }


def create_job_worker(settings: Settings, redis: Redis, **overrides: Any) -> ArqWorker:
    """An arq worker for the jobs; `overrides` are further `arq.worker.Worker` arguments."""
    _quiet_beta_warning()
    return ArqWorker(**{**worker_options(settings, redis), **overrides})


def worker_settings() -> type:
    """`WorkerSettings` for `arq lcstream.worker.jobs.WorkerSettings`, built from the settings when
    arq asks (`lcstream.worker.jobs` builds it lazily, so importing the jobs neither reads the
    environment nor opens a client)."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    _quiet_beta_warning()
    return type("WorkerSettings", (), worker_options(settings, connect_single_with(settings)))


def _quiet_beta_warning() -> None:
    # astream_events(version="v3") is marked beta; every job would print it.
    warnings.filterwarnings("ignore", category=LangChainBetaWarning)
