"""`tee_run()`: copying a LangGraph v3 run into Redis while its caller still consumes it.

`graph.astream_events(input, version="v3")` returns a run stream whose
`messages` yields one `AsyncChatModelStream` per chat-model call. `tee_run`
splits that channel (LangGraph's own `atee`): the caller iterates
`teed.messages` instead, and keeps `run.values`, `run.output()` and the rest
untouched, while a task copies every message into Redis as run R (its index
`X(R)`, each message through `tee_stream`) and ends the run with the graph.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import structlog
from langchain_core.language_models.chat_model_stream import AsyncChatModelStream

from lcstream.streams.cluster import RedisClient
from lcstream.streams.keys import Keyspace, default_keyspace, validate_message_id
from lcstream.streams.run_index import RunIndex, end_run
from lcstream.streams.tee import tee_stream

log = structlog.get_logger("lcstream.producer")

DEFAULT_RETENTION_S = 86_400


class TeedRun:
    """A run being copied: `messages` for the caller, `run_id` for followers, `finished()` to wait."""

    def __init__(self, run_id: str, messages: AsyncIterator[AsyncChatModelStream], copy: asyncio.Task[None]):
        self.run_id = run_id
        self.messages = messages
        self._copy = copy

    async def finished(self) -> None:
        """Wait until every message and the run's end are in Redis (a failure to write is logged)."""
        await asyncio.shield(self._copy)


def tee_run(
    redis: RedisClient,
    run: Any,
    *,
    run_id: str | None = None,
    keyspace: Keyspace | None = None,
    retention_s: int = DEFAULT_RETENTION_S,
) -> TeedRun:
    """Start copying `run` (an `AsyncGraphRunStream`) to Redis as run R (default: a new `run-<uuid>`).

    Iterate the returned `messages` instead of `run.messages` (which has one subscriber only).
    """
    run_id = validate_message_id(run_id) if run_id is not None else f"run-{uuid.uuid4()}"
    theirs, mine = run.messages.atee(2)
    copy = asyncio.create_task(
        _copy(redis, run, mine, run_id, keyspace or default_keyspace(), retention_s), name=f"tee-run:{run_id}"
    )
    return TeedRun(run_id, theirs, copy)


async def _copy(
    redis: RedisClient,
    run: Any,
    messages: AsyncIterator[AsyncChatModelStream],
    run_id: str,
    keyspace: Keyspace,
    retention_s: int,
) -> None:
    index = RunIndex(redis, keyspace, run_id, retention_s=retention_s)
    tees: list[asyncio.Task[str]] = []
    error: Mapping[str, str] | None = None
    try:
        async for stream in messages:
            message_id, namespace = str(stream.message_id), list(stream.namespace)
            await index.add(message_id, namespace=namespace, node=stream.node)
            tees.append(asyncio.create_task(tee_stream(
                redis, stream, message_id=message_id, keyspace=keyspace,
                namespace=namespace, node=stream.node, run_id=run_id,
            )))  # fmt: skip
        status = "interrupted" if await run.interrupted() else "completed"
    except Exception as exc:  # the graph raised: what ran is copied, then the run ends failed
        status, error = "failed", {"message": str(exc) or type(exc).__name__, "code": "run_error"}
    finally:
        await asyncio.gather(*tees, return_exceptions=True)
    if index.messages:
        try:
            await end_run(redis, keyspace, run_id, status, error=error, retention_s=retention_s)
        except Exception as exc:
            log.warning("tee-run-end-failed", run_id=run_id, status=status, error=str(exc))
