"""The client side of generation jobs: enqueue one (get its message id at once), cancel one; and of
graph-run jobs (a run id at once).

A generation job's arq job id is its message id M, so a cancel finds it by M.
M is chosen here, before the job runs: `lc_run--<uuid>`, the id langchain-core
gives the message of a run with that run id, so the job passes the uuid as
`run_id` and the assembled `AIMessage.id` equals M. Jobs are JSON
(`streams.jobcodec`), never pickle, whatever client the caller passes.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss
from arq.jobs import Job, JobStatus
from redis.asyncio import Redis

from lcstream.config.settings import check_model_path
from lcstream.streams.ending import MessageState, end_message, message_state, wait_until_ended
from lcstream.streams.errors import MessageIdInUseError
from lcstream.streams.events import now_ms
from lcstream.streams.jobcodec import dumps_job, loads_job
from lcstream.streams.keys import Keyspace, default_keyspace, validate_message_id
from lcstream.streams.run_index import end_run, run_status

GENERATE_JOB = "generate"
REASSEMBLE_JOB = "reassemble"
GRAPH_RUN_JOB = "run_graph"
RUN_ID_PREFIX = "lc_run--"

DEFAULT_RUN_RETENTION_S = 86_400  # of a run's index ended here (a worker's jobs use LCSTREAM_RETENTION_S)

# Input of a chat model that survives JSON: a prompt, or message dicts ({"role": ..., "content": ...}).
ModelInput = str | list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Cancellation:
    """What a cancel found and left: the message's state before and after."""

    found: MessageState
    state: MessageState

    @property
    def cancelled(self) -> bool:
        """Whether this cancel ended an unfinished message (failed, normally with code `cancelled`)."""
        return not self.found.ended and self.state is MessageState.FAILED


def new_message_id() -> str:
    """A fresh message id `lc_run--<uuid4>`."""
    return f"{RUN_ID_PREFIX}{uuid.uuid4()}"


def run_id_of(message_id: str) -> uuid.UUID | None:
    """The run id inside a message id `lc_run--<uuid>`, or None for any other id."""
    if not message_id.startswith(RUN_ID_PREFIX):
        return None
    try:
        return uuid.UUID(message_id.removeprefix(RUN_ID_PREFIX))
    except ValueError:
        return None


def job_client(redis: Redis, keyspace: Keyspace | None = None) -> ArqRedis:
    """An arq client on `redis`'s connection pool, with the JSON codec and lcstream's queue."""
    return ArqRedis(
        redis.connection_pool,
        job_serializer=dumps_job,
        job_deserializer=loads_job,
        default_queue_name=(keyspace or default_keyspace()).job_queue,
    )


async def enqueue_generation(
    redis: Redis,
    input: ModelInput,
    *,
    model: str | None = None,
    message_id: str | None = None,
    keyspace: Keyspace | None = None,
) -> str:
    """Queue a `generate` job and return its message id M at once; follow M with `attach`,
    `subscribe` or `result` from anywhere.

    `model` names the chat model factory `module:factory` (default: the
    worker's `LCSTREAM_MODEL`); the worker refuses factories it does not allow.

    Raises:
        MessageIdInUseError: `message_id` already has a job, events or an outcome.
    """
    if not (isinstance(input, str) or (isinstance(input, list) and all(isinstance(m, dict) for m in input))):
        raise TypeError("input is a prompt string or a list of message dicts")
    if model is not None:
        check_model_path(model)
    space = keyspace or default_keyspace()
    message_id = validate_message_id(message_id) if message_id is not None else new_message_id()
    keys = space.message(message_id)
    if await redis.exists(keys.events, keys.result):
        raise MessageIdInUseError(f"message {message_id} already has events or an outcome")
    job = await job_client(redis, space).enqueue_job(
        GENERATE_JOB, input, model=model, message_id=message_id, _job_id=message_id
    )
    if job is None:
        raise MessageIdInUseError(f"a job for message {message_id} exists already")
    return message_id


async def enqueue_graph_run(
    redis: Redis,
    graph: str,
    input: dict[str, Any],
    *,
    run_id: str | None = None,
    keyspace: Keyspace | None = None,
) -> str:
    """Queue a `run_graph` job: compiled graph factory `graph` ('module:factory', one the worker's
    LCSTREAM_ALLOWED_GRAPHS allows) run on `input` with every chat-model call published as run R.
    Return R at once (default: a new `run-<uuid>`); follow it with `attach_run` or `subscribe_run`.

    Raises:
        MessageIdInUseError: R already has a job or an index.
    """
    if not isinstance(input, dict):
        raise TypeError("a graph's input is a JSON object (its state)")
    check_model_path(graph)
    space = keyspace or default_keyspace()
    run_id = validate_message_id(run_id) if run_id is not None else f"run-{uuid.uuid4()}"
    if await redis.exists(space.run(run_id).index):
        raise MessageIdInUseError(f"run {run_id} already has an index")
    job = await job_client(redis, space).enqueue_job(
        GRAPH_RUN_JOB, graph, input, run_id=run_id, _job_id=run_id
    )
    if job is None:
        raise MessageIdInUseError(f"a job for run {run_id} exists already")
    return run_id


async def is_graph_run(redis: Redis, job_id: str, *, keyspace: Keyspace | None = None) -> bool:
    """Whether `job_id` names a run: it has an index, or its job is a `run_graph` job."""
    space = keyspace or default_keyspace()
    if await run_status(redis, space, job_id) is not None:
        return True
    info = await Job(
        job_id, job_client(redis, space), _queue_name=space.job_queue, _deserializer=loads_job
    ).info()
    return info is not None and info.function == GRAPH_RUN_JOB


async def cancel_graph_run(
    redis: Redis, run_id: str, *, keyspace: Keyspace | None = None, wait_s: float = 5.0
) -> tuple[str | None, str | None]:
    """Stop the graph of run R: it ends failed with code `cancelled`. Return R's status before and after
    (None: no index; `running`; or how it ended). As `cancel_generation` does for a message: the job is
    aborted through arq, and the run is ended here if it has not ended within `wait_s`."""
    space = keyspace or default_keyspace()
    found = await run_status(redis, space, run_id)
    if found not in (None, "running"):
        return found, found
    client = job_client(redis, space)
    status = await Job(run_id, client, _queue_name=space.job_queue, _deserializer=loads_job).status()
    if status in (JobStatus.not_found, JobStatus.complete) and found is None:
        return None, None  # no such run in flight
    reason = "cancelled (no job is running it)"
    if status not in (JobStatus.not_found, JobStatus.complete):
        await client.zadd(abort_jobs_ss, {run_id: now_ms()})
        reason = "cancelled before it started"
        if status is JobStatus.in_progress:
            reason = f"cancelled (its job did not stop within {wait_s:g} s)"
            deadline = asyncio.get_running_loop().time() + wait_s
            while (now := await run_status(redis, space, run_id)) in (None, "running"):
                if asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.05)  # polling the index: the job ends it when its task is cancelled
            else:
                return found, now
    error = {"message": reason, "code": "cancelled"}
    await end_run(redis, space, run_id, "failed", error=error, retention_s=DEFAULT_RUN_RETENTION_S)
    return found, await run_status(redis, space, run_id)


async def enqueue_reassembly(redis: Redis, message_id: str, *, keyspace: Keyspace | None = None) -> str:
    """Queue a `reassemble` job for a stored message; return the job id."""
    validate_message_id(message_id)
    job = await job_client(redis, keyspace).enqueue_job(REASSEMBLE_JOB, message_id)
    assert job is not None  # a fresh random job id can't exist yet
    return job.job_id


async def cancel_generation(
    redis: Redis, message_id: str, *, keyspace: Keyspace | None = None, wait_s: float = 5.0
) -> Cancellation:
    """Ask the producer of M to stop; M ends failed with code `cancelled`.

    The job is aborted through arq: a running one is cancelled at its worker's
    next poll and its tee ends M with an `error` event; a queued one never
    starts, so M is ended here. If M has not ended within `wait_s` (its worker
    died), it is ended here too. A message that ended already is left as it is.
    """
    space = keyspace or default_keyspace()
    found = await message_state(redis, message_id, space)
    if found.ended:
        return Cancellation(found, found)
    client = job_client(redis, space)
    status = await Job(message_id, client, _queue_name=space.job_queue, _deserializer=loads_job).status()
    if status in (JobStatus.not_found, JobStatus.complete):
        if found is MessageState.ABSENT:
            return Cancellation(found, found)  # no such message in flight: nothing to end
        reason = "cancelled (no job is producing it)"
    else:
        # What `Job.abort()` does before it waits for arq's result: the worker cancels a running job
        # at its next poll, and drops a queued one when it comes to start it.
        await client.zadd(abort_jobs_ss, {message_id: now_ms()})
        reason = "cancelled before it started"
        if status is JobStatus.in_progress:
            state = await wait_until_ended(redis, message_id, wait_s, keyspace=space)
            if state.ended:
                return Cancellation(found, state)
            reason = f"cancelled (its producer did not stop within {wait_s:g} s)"
    await end_message(redis, message_id, message=reason, code="cancelled", keyspace=space, announce=True)
    return Cancellation(found, await message_state(redis, message_id, space))
