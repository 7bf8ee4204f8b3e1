"""What a `generate` job does: run a chat model and tee its events into message M, exactly once.

A retry (arq runs a job again when its worker died mid-job, or cancelled it at
shutdown) never writes a second generation into M: explicit event ids would
collide with the first attempt's, and clients already saw its frames. So an
attempt looks at M first:

- no events yet: nobody saw anything, generate (a first run, or a retry after a
  crash before the first event);
- ended (terminal event or outcome): report how, write nothing;
- open: an earlier attempt died mid-generation; end M failed with code
  `producer_lost` at once (don't wait for the idle timeout), write nothing else.
"""

from __future__ import annotations

import importlib
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from langchain_core.language_models import BaseChatModel
from redis.asyncio import Redis

from lcstream.config import Settings
from lcstream.streams.ending import MessageState, end_message, message_state
from lcstream.streams.errors import LcstreamError, MessageIdInUseError
from lcstream.streams.jobqueue import ModelInput, run_id_of
from lcstream.streams.keys import Keyspace
from lcstream.streams.tee import tee_stream

log = structlog.get_logger("lcstream.jobs")


class ModelNotAllowedError(LcstreamError, ValueError):
    """A job named a model factory the worker's settings do not allow."""


@dataclass(frozen=True, slots=True)
class Generation:
    """One `generate` job: which message, which model, which attempt."""

    message_id: str
    input: ModelInput
    model: str | None
    attempt: int


def load_model(path: str | None, settings: Settings) -> BaseChatModel:
    """Build the chat model of factory `path` (default `LCSTREAM_MODEL`), if the settings allow it.

    Job arguments come from Redis, so they may only pick among factories the
    operator configured (`LCSTREAM_MODEL`, `LCSTREAM_ALLOWED_MODELS`), never
    name any code to run.
    """
    allowed = {p for p in (settings.model, *settings.allowed_models) if p}
    chosen = path or settings.model
    if chosen is None:
        raise ModelNotAllowedError("no model named and LCSTREAM_MODEL is not set")
    if chosen not in allowed:
        raise ModelNotAllowedError(f"model {chosen!r} is not LCSTREAM_MODEL or in LCSTREAM_ALLOWED_MODELS")
    model = load_factory(chosen)
    if not isinstance(model, BaseChatModel):
        raise ModelNotAllowedError(f"{chosen} returned {type(model).__name__}, not a chat model")
    return model


def load_factory(path: str) -> Any:
    """What factory `path` ('module:factory', allowed by the caller) returns."""
    module_name, _, attribute = path.partition(":")
    factory: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        factory = getattr(factory, part)
    return factory()


async def generate_message(
    redis: Redis, keyspace: Keyspace, settings: Settings, job: Generation
) -> dict[str, str]:
    """Run the job; return `{"message_id", "status"}` (status as the producer saw M end)."""
    message_id = job.message_id
    found = await message_state(redis, message_id, keyspace)
    if found is MessageState.ABSENT:
        status = await _generate(redis, keyspace, settings, job)
    elif found.ended:
        status = found
        log.info("already-ended", message_id=message_id, status=status, attempt=job.attempt)
    elif job.attempt == 1:
        raise MessageIdInUseError(f"message {message_id} is open and this job never ran: not touching it")
    else:
        status = MessageState.FAILED
        await end_message(
            redis, message_id, keyspace=keyspace, code="producer_lost",
            message=f"the job producing this message was lost mid-generation (attempt {job.attempt - 1})",
        )  # fmt: skip
        log.warning("producer-lost", message_id=message_id, attempt=job.attempt)
    return {"message_id": message_id, "status": str(status)}


async def _generate(redis: Redis, keyspace: Keyspace, settings: Settings, job: Generation) -> MessageState:
    message_id = job.message_id
    try:
        model = load_model(job.model, settings)
    except Exception as exc:  # before any event: end M here, its client holds it already
        return await _refuse(redis, keyspace, message_id, "invalid_model", exc)
    try:
        run_id = run_id_of(message_id) or uuid.uuid4()
        stream = await model.astream_events(job.input, {"run_id": run_id}, version="v3")
    except Exception as exc:
        return await _refuse(redis, keyspace, message_id, "invalid_input", exc)
    log.info("generating", message_id=message_id, model=job.model or settings.model, attempt=job.attempt)
    try:
        # The tee turns a model error or our cancellation (abort, timeout, shutdown) into an
        # `error` event, so M always ends.
        await tee_stream(redis, stream, message_id=message_id, keyspace=keyspace)
    finally:
        await stream.aclose()  # cancelled: stop the model's own producer task too
    status = MessageState.COMPLETED if stream.output_message is not None else MessageState.FAILED
    log.info("generated", message_id=message_id, status=status)
    return status


async def _refuse(
    redis: Redis, keyspace: Keyspace, message_id: str, code: str, exc: Exception
) -> MessageState:
    error = str(exc) or type(exc).__name__
    await end_message(redis, message_id, message=error, code=code, keyspace=keyspace, announce=True)
    log.warning("generation-refused", message_id=message_id, code=code, error=error)
    return MessageState.FAILED
