"""`RedisStreamHandler`: every chat-model call under a LangChain or LangGraph run, as messages in Redis.

Pass it in `config={"callbacks": [handler]}` to a chat model, chain, agent or
compiled graph and call it with `ainvoke`, `astream` or
`astream_events(version="v3")`. Each chat-model call becomes a message (its id
the `lc_run--<call id>` langchain-core gives it), announced with the namespace
and node LangGraph puts in the call's metadata, and grouped under one run R:
the id passed in, else the root run's id. The run's index `X(R)` lists the
messages in the order they started and ends with the run.

Events are queued and written in coalesced batches by each message's
`StreamProducer`, so the model's stream never waits for Redis per event.
A call that raises or is cancelled still ends its message (an `error` event).
A Redis failure is logged, never raised into the model's run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any
from uuid import UUID

import structlog
from langchain_core.callbacks import AsyncCallbackHandler

from lcstream.streams.cluster import RedisClient
from lcstream.streams.keys import Keyspace, default_keyspace, validate_message_id
from lcstream.streams.langchain_internals import V2StreamingOptIn
from lcstream.streams.producer import StreamProducer
from lcstream.streams.run_index import RunIndex, end_run

log = structlog.get_logger("lcstream.producer")

MESSAGE_ID_PREFIX = "lc_run--"  # langchain-core's prefix of a chat-model call's message id
DEFAULT_RETENTION_S = 86_400
# Events of a call trickle in as the model makes them; a write waits this long for more to join it,
# so a run costs a Redis round trip per few events, not per event, on the model's own event loop.
WRITE_LINGER_S = 0.02
INTERRUPTS = ("GraphInterrupt", "NodeInterrupt")  # LangGraph pauses a run this way: it ends `interrupted`


class HandlerReusedError(RuntimeError):
    """A second run was given a handler that published a run already (one handler per run)."""


class SyncUseError(RuntimeError):
    """The handler was called from the sync API (`invoke`), which runs each callback on a loop of its own."""


def call_location(metadata: Mapping[str, Any] | None) -> tuple[list[str], str | None]:
    """The namespace and node of a chat-model call, from the metadata LangGraph gives it.

    `langgraph_checkpoint_ns` is `parent:task|…|node:task`: the graphs above the call, then the call's
    own node (`checkpoint_ns` stops at the subgraph, so it is the fallback only).
    """
    metadata = metadata or {}
    checkpoint_ns = metadata.get("langgraph_checkpoint_ns") or metadata.get("checkpoint_ns") or ""
    parts = checkpoint_ns.split("|") if checkpoint_ns else []
    node = metadata.get("langgraph_node")
    return parts[:-1], str(node) if node is not None else None


class RedisStreamHandler(AsyncCallbackHandler, V2StreamingOptIn):
    """Publishes every chat-model call of a run to Redis; `run_id` is R once the run has started."""

    raise_error = True  # only for misuse (the sync API): Redis faults are logged, not raised
    run_inline = True  # the two sync callbacks below run in the event loop's thread, not an executor

    def __init__(
        self,
        redis: RedisClient,
        *,
        run_id: str | None = None,
        keyspace: Keyspace | None = None,
        retention_s: int = DEFAULT_RETENTION_S,
        retry_deadline_s: float = 30.0,
    ) -> None:
        """`retry_deadline_s` bounds how long a write retries an unreachable Redis before it is dropped
        (and logged); the run's end waits for the writes, so at most that long."""
        self.run_id = validate_message_id(run_id) if run_id is not None else None
        self._redis = redis
        self._keyspace = keyspace or default_keyspace()
        self._retention_s = retention_s
        self._retry_deadline_s = retry_deadline_s
        self._root: UUID | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._calls: dict[UUID, tuple[list[str], str | None]] = {}
        self._producers: dict[UUID, StreamProducer] = {}
        self._writes: set[asyncio.Task[None]] = set()  # index entries and messages' last writes, in flight
        self._index: RunIndex | None = None
        self._interrupted = False
        self.ended: str | None = None  # how the run ended, once it has

    # -- the run --------------------------------------------------------------------------------

    def on_chain_start(  # type: ignore[override]
        self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID,
        parent_run_id: UUID | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        """The root chain starts the run. Sync on purpose: under the sync API it raises at once."""
        self._enter(run_id, parent_run_id)

    async def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """The root chain's end completes the run, or ends it interrupted if a node was."""
        if run_id == self._root:
            await self._end_run("interrupted" if self._interrupted else "completed")

    async def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """The root chain's error fails the run. A node's interrupt (LangGraph pauses the run, and the
        graph's own end follows normally) marks it to end interrupted."""
        if type(error).__name__ in INTERRUPTS:
            self._interrupted = True
        if run_id == self._root:
            await self._end_run_with(error)

    # -- each chat-model call -------------------------------------------------------------------

    def on_chat_model_start(  # type: ignore[override]
        self, serialized: dict[str, Any] | None, messages: Any, *, run_id: UUID,
        parent_run_id: UUID | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        """Remember where the call is (namespace, node); a model called alone is the run's root.
        Sync on purpose, like `on_chain_start`."""
        self._enter(run_id, parent_run_id)
        self._calls[run_id] = call_location(metadata)

    async def on_stream_event(self, event: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Queue one protocol event of a call; its first opens the message and indexes it in the run.
        The hot path: the call's start checked the event loop already."""
        producer = self._producers.get(run_id)
        if producer is None:
            self._check_loop()
            producer = await self._open(run_id, event)
            if producer is None:
                return
        try:
            await producer.send(event)
        except Exception as exc:  # its writer gave up on Redis: the model's run goes on without it
            log.warning("handler-write-failed", message_id=producer.message_id, error=str(exc))

    async def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """The call ended: its message's last events are written in the background."""
        self._close(run_id)
        if run_id == self._root:
            await self._end_run("completed")

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """The call failed: its message ends with an `error` event."""
        producer = self._producers.get(run_id)
        if producer is not None and not producer.ended:
            code = "cancelled" if isinstance(error, asyncio.CancelledError) else "model_error"
            message = str(error) or type(error).__name__
            await self._send_quietly(producer, {"event": "error", "message": message, "code": code})
        self._close(run_id)
        if run_id == self._root:
            await self._end_run_with(error)

    # -- internals ------------------------------------------------------------------------------

    def _check_loop(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the sync API calls sync callbacks with no loop running
            loop = None
        if loop is None:
            raise SyncUseError(
                "RedisStreamHandler is async: call the model or graph with ainvoke, astream or "
                "astream_events, not invoke or stream"
            )
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:  # before any Redis call: a client can't cross event loops
            raise SyncUseError(
                "RedisStreamHandler is async: call the model or graph with ainvoke, astream or "
                "astream_events (the sync API runs callbacks on event loops of their own)"
            )

    def _enter(self, run_id: UUID, parent_run_id: UUID | None) -> None:
        self._check_loop()
        if parent_run_id is None and self._root is not None and run_id != self._root:
            raise HandlerReusedError(
                f"this RedisStreamHandler published run {self.run_id} already: make one handler per run"
            )
        if parent_run_id is None and self._root is None:
            self._root = run_id
            self.run_id = self.run_id or str(run_id)

    async def _open(self, call: UUID, event: Mapping[str, Any]) -> StreamProducer | None:
        if self.run_id is None or self.ended is not None:
            return None  # no run yet (cannot happen once a call started), or it ended: nothing follows
        start_id = event.get("id") if event.get("event") == "message-start" else None
        message_id = str(start_id or f"{MESSAGE_ID_PREFIX}{call}")
        namespace, node = self._calls.get(call, ([], None))
        producer = StreamProducer(
            self._redis,
            message_id,
            keyspace=self._keyspace,
            namespace=namespace,
            node=node,
            run_id=self.run_id,
            retry_deadline_s=self._retry_deadline_s,
            linger_s=WRITE_LINGER_S,
        )
        self._producers[call] = producer
        if self._index is None:
            self._index = RunIndex(
                self._redis, self._keyspace, self.run_id,
                retention_s=self._retention_s, retry_deadline_s=self._retry_deadline_s,
            )  # fmt: skip
        # In the background, like the events: tasks start in the order they are made, and the index
        # writes one entry at a time, so entries keep the order the messages started in.
        self._in_background(self._index_message(self._index, message_id, namespace, node), message_id)
        return producer

    async def _index_message(
        self, index: RunIndex, message_id: str, namespace: list[str], node: str | None
    ) -> None:
        try:
            await index.add(message_id, namespace=namespace, node=node)
        except Exception as exc:
            log.warning("handler-index-failed", run_id=index.run_id, message_id=message_id, error=str(exc))

    def _in_background(self, write: Coroutine[Any, Any, None], message_id: str) -> None:
        task = asyncio.create_task(write, name=f"handler-write:{message_id}")
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _send_quietly(self, producer: StreamProducer, event: Mapping[str, Any]) -> None:
        try:
            await producer.send(event)
        except Exception as exc:  # its writer gave up on Redis: the model's run goes on without it
            log.warning("handler-write-failed", message_id=producer.message_id, error=str(exc))

    def _close(self, call: UUID) -> None:
        producer = self._producers.pop(call, None)
        if producer is not None:
            self._in_background(self._flush(producer), producer.message_id)

    async def _flush(self, producer: StreamProducer) -> None:
        try:
            await producer.aclose()
        except Exception as exc:
            log.warning("handler-write-failed", message_id=producer.message_id, error=str(exc))

    async def _end_run_with(self, error: BaseException) -> None:
        if type(error).__name__ in INTERRUPTS:
            await self._end_run("interrupted")
        else:
            code = "cancelled" if isinstance(error, asyncio.CancelledError) else "run_error"
            await self._end_run("failed", {"message": str(error) or type(error).__name__, "code": code})

    async def _end_run(self, status: str, error: Mapping[str, str] | None = None) -> None:
        """Wait for every message's last write, then end the run (once)."""
        if self.ended is not None or self.run_id is None:
            return
        self.ended = status
        for call, producer in list(self._producers.items()):  # a call the run's end cut short
            if not producer.ended:
                await self._send_quietly(
                    producer, {"event": "error", "message": "the run ended", "code": "cancelled"}
                )
            self._close(call)
        await asyncio.gather(*self._writes, return_exceptions=True)
        if self._index is None:
            return  # no chat-model call: nothing was announced, nobody follows this run
        try:
            await end_run(
                self._redis, self._keyspace, self.run_id, status,
                error=error, retention_s=self._retention_s, retry_deadline_s=self._retry_deadline_s,
            )  # fmt: skip
        except Exception as exc:
            log.warning("handler-end-failed", run_id=self.run_id, status=status, error=str(exc))
