"""What a `run_graph` job does: run a compiled LangGraph graph with every chat-model call published as
run R (`RedisStreamHandler`), exactly once.

A retry (arq runs a job again when its worker died mid-job) never starts the
run over into the same R: followers saw its first messages. So an attempt
looks at R's index first: none, run the graph; ended, report how; open (an
earlier attempt died mid-run), end the run failed with code `producer_lost`.
Its open messages end on their own (workers fail them after the idle timeout).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis

from lcstream.config import Settings
from lcstream.streams.errors import MessageIdInUseError
from lcstream.streams.keys import Keyspace
from lcstream.streams.run_handler import RedisStreamHandler
from lcstream.streams.run_index import end_run, run_status
from lcstream.worker.jobs.generation import ModelNotAllowedError, load_factory

log = structlog.get_logger("lcstream.jobs")


@dataclass(frozen=True, slots=True)
class GraphRun:
    """One `run_graph` job: which run, which graph, on what input, which attempt."""

    run_id: str
    graph: str
    input: dict[str, Any]
    attempt: int


def load_graph(path: str, settings: Settings) -> Any:
    """The compiled graph of factory `path`, if LCSTREAM_ALLOWED_GRAPHS allows it."""
    if path not in settings.allowed_graphs:
        raise ModelNotAllowedError(f"graph {path!r} is not in LCSTREAM_ALLOWED_GRAPHS")
    graph = load_factory(path)
    if not callable(getattr(graph, "ainvoke", None)):
        raise ModelNotAllowedError(f"{path} returned {type(graph).__name__}, not a runnable graph")
    return graph


async def run_graph_job(
    redis: Redis, keyspace: Keyspace, settings: Settings, job: GraphRun
) -> dict[str, str]:
    """Run the job; return `{"run_id", "status"}` (how the run ended)."""
    status = await run_status(redis, keyspace, job.run_id)
    if status not in (None, "running"):
        log.info("already-ended", run_id=job.run_id, status=status, attempt=job.attempt)
        return {"run_id": job.run_id, "status": str(status)}
    if status == "running" and job.attempt == 1:
        raise MessageIdInUseError(f"run {job.run_id} is open and this job never ran: not touching it")
    if status == "running":
        lost = {
            "message": f"the job running this graph was lost (attempt {job.attempt - 1})",
            "code": "producer_lost",
        }
        await end_run(redis, keyspace, job.run_id, "failed", error=lost, retention_s=settings.retention_s)
        log.warning("producer-lost", run_id=job.run_id, attempt=job.attempt)
        return {"run_id": job.run_id, "status": "failed"}
    return {"run_id": job.run_id, "status": await _run(redis, keyspace, settings, job)}


async def _run(redis: Redis, keyspace: Keyspace, settings: Settings, job: GraphRun) -> str:
    try:
        graph = load_graph(job.graph, settings)
    except Exception as exc:  # before anything ran: end R here, its client follows it already
        refused = {"message": str(exc) or type(exc).__name__, "code": "invalid_graph"}
        await end_run(redis, keyspace, job.run_id, "failed", error=refused, retention_s=settings.retention_s)
        log.warning("graph-refused", run_id=job.run_id, graph=job.graph, error=refused["message"])
        return "failed"
    handler = RedisStreamHandler(
        redis, run_id=job.run_id, keyspace=keyspace, retention_s=settings.retention_s
    )
    log.info("running-graph", run_id=job.run_id, graph=job.graph, attempt=job.attempt)
    try:
        await graph.ainvoke(job.input, config={"callbacks": [handler]})
    except asyncio.CancelledError:  # aborted, timed out, shut down: the run ends, then the job
        await _end_unless_ended(redis, keyspace, settings, job.run_id, handler, "cancelled")
        raise
    except Exception as exc:  # the graph raised: the handler ended the run failed
        await _end_unless_ended(redis, keyspace, settings, job.run_id, handler, "run_error", str(exc))
    status = handler.ended or "completed"
    log.info("graph-ran", run_id=job.run_id, status=status)
    return status


async def _end_unless_ended(
    redis: Redis, keyspace: Keyspace, settings: Settings, run_id: str, handler: RedisStreamHandler, code: str,
    message: str = "",
) -> None:  # fmt: skip
    if handler.ended is None:
        error = {"message": message or code, "code": code}
        await asyncio.shield(
            end_run(redis, keyspace, run_id, "failed", error=error, retention_s=settings.retention_s)
        )
