"""Writing one message's events into `E(M)` and announcing it on `D(k)`.

Entries get explicit ids `0-1, 0-2, …` so a retried write is refused by Redis
instead of duplicated, and the announcement is made by a script only when it
writes the first event, so a retried announcement is not doubled either.
Writes are coalesced: while one batch is on the wire, the next one gathers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import orjson
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT

from lcstream.streams.backoff import retry_transient
from lcstream.streams.cluster import RedisClient, node_for, refresh_slots, slot_moved
from lcstream.streams.errors import LcstreamError, MessageIdInUseError, SlotMovedError
from lcstream.streams.events import EVENT_FIELD, TERMINAL_EVENTS, TIME_FIELD, now_ms
from lcstream.streams.keys import Keyspace, default_keyspace, validate_message_id
from lcstream.streams.partition_count import check_partition_count

# KEYS: E(M), D(k). ARGV: n, then n pairs (event JSON, time ms) for ids 0-1..0-n, then dispatch fields.
# The first batch of a message: written with its announcement only into a stream that does not exist.
_ANNOUNCE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = tonumber(ARGV[1])
for i = 1, n do
  redis.call('XADD', KEYS[1], '0-' .. i, 'e', ARGV[2 * i], 't', ARGV[2 * i + 1])
end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2 * n + 2))
return 1
"""

_DUPLICATE_ID = "equal or smaller than the target stream top item"


class ProducerClosedError(LcstreamError):
    """`send()` after `aclose()`."""


class MessageEndedError(LcstreamError, ValueError):
    """An event after the message's `message-finish` or `error`: workers would reject it."""


class MessageExpiredError(LcstreamError):
    """The message's events stream no longer exists: it ended and its retention passed."""


class StreamProducer:
    """Writes the events of one message, in order, exactly once, in coalesced batches.

    Use as `async with StreamProducer(redis, message_id) as producer:` and
    `await producer.send(event)`; leaving the block waits until every event
    is in Redis and raises if it could not be written.
    """

    def __init__(
        self,
        redis: RedisClient,
        message_id: str,
        *,
        keyspace: Keyspace | None = None,
        namespace: list[str] | None = None,
        node: str | None = None,
        run_id: str | None = None,
        max_batch: int = 512,
        retry_deadline_s: float = 30.0,
        first_seq: int = 1,
        linger_s: float = 0.0,
    ) -> None:
        """`run_id` announces M as a message of run R (v1.1). `first_seq` above 1 resumes a message whose
        first events (and announcement) are in Redis. `linger_s` lets a write wait that long for more
        events to join it: fewer round trips for events that trickle in, each that much later."""
        self.message_id = validate_message_id(message_id)
        self._redis = redis
        self._keyspace = keyspace or default_keyspace()
        self._keys = self._keyspace.message(message_id)
        self._dispatch_fields: list[bytes | str] = ["m", message_id]
        if namespace:
            self._dispatch_fields += ["ns", orjson.dumps(namespace)]
        if node:
            self._dispatch_fields += ["node", node]
        if run_id:
            self._dispatch_fields += ["run", validate_message_id(run_id)]
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._retry_deadline_s = retry_deadline_s
        self._pending: list[tuple[bytes, bytes]] = []  # (event JSON, time ms)
        self._written = first_seq - 1
        self._wakeup = asyncio.Event()
        self._hurry = asyncio.Event()  # cuts a linger short: someone waits (flush), or the message ended
        self._idle = asyncio.Event()
        self._idle.set()
        self._flusher: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._ended = False

    @property
    def written(self) -> int:
        """Events acknowledged by Redis so far."""
        return self._written

    @property
    def ended(self) -> bool:
        """Whether a `message-finish` or `error` event was sent."""
        return self._ended

    async def send(self, event: Mapping[str, Any]) -> None:
        """Queue one event; it is written with the next batch.

        Raises:
            MessageEndedError: the message already ended; nothing after its end is written.
        """
        if self._closed:
            raise ProducerClosedError(f"producer of {self.message_id} is closed")
        if self._ended:
            raise MessageEndedError(
                f"message {self.message_id} already ended: {event.get('event')} after its end"
            )
        self._raise_error()
        self._ended = event.get("event") in TERMINAL_EVENTS
        if self._ended:
            self._hurry.set()
        self._pending.append((orjson.dumps(event), str(now_ms()).encode()))
        self._idle.clear()
        self._wakeup.set()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name=f"producer:{self.message_id}")
        if len(self._pending) >= 8 * self._max_batch:
            await self.flush()  # backpressure: don't outrun Redis without bound

    async def flush(self) -> None:
        """Wait until every queued event is in Redis; raise if the writer gave up."""
        # The writer sets `_idle` when the queue is empty and when it stops on an error.
        self._hurry.set()
        await self._idle.wait()
        self._raise_error()

    async def aclose(self) -> None:
        """Flush, then stop the background writer."""
        if self._closed:
            return
        try:
            await self.flush()
        finally:
            self._closed = True
            if self._flusher is not None and not self._flusher.done():
                self._flusher.cancel()
                await asyncio.gather(self._flusher, return_exceptions=True)

    async def __aenter__(self) -> StreamProducer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    async def _flush_loop(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                if self._linger_s and len(self._pending) < self._max_batch and not self._hurry.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._linger_s):
                            await self._hurry.wait()
                self._hurry.clear()
                self._wakeup.clear()
                while self._pending:
                    batch = self._pending[: self._max_batch]
                    await self._write_with_retry(batch)
                    del self._pending[: len(batch)]
                    self._written += len(batch)
                self._idle.set()
        except Exception as exc:
            self._error = exc
            self._idle.set()

    async def _write_with_retry(self, batch: list[tuple[bytes, bytes]]) -> None:
        await retry_transient(
            lambda: self._write(batch),
            what=f"writing events of {self.message_id}",
            deadline_s=self._retry_deadline_s,
        )

    async def _write(self, batch: list[tuple[bytes, bytes]]) -> None:
        if self._written == 0:
            await self._write_first(batch)
            return
        keys, first_seq = self._keys, self._written + 1
        node = await node_for(self._redis, keys.events)  # a cluster runs MULTI on the slot's master
        pipe = node.pipeline(transaction=True)
        for seq, (event_json, time_ms) in enumerate(batch, start=first_seq):
            # NOMKSTREAM: a late write must not recreate a message whose keys expired.
            fields: dict[FieldT, EncodableT] = {EVENT_FIELD: event_json, TIME_FIELD: time_ms}
            pipe.xadd(keys.events, fields, id=f"0-{seq}", nomkstream=True)
        for reply in await pipe.execute(raise_on_error=False):
            await self._check(reply)
            if reply is None:
                raise MessageExpiredError(
                    f"events stream of {self.message_id} is gone (ended and expired): event not written"
                )

    async def _write_first(self, batch: list[tuple[bytes, bytes]]) -> None:
        """The first batch and the announcement, in one script that writes nothing into an existing
        stream: a retry of this producer's own write (its reply was lost) finds its event 1 there."""
        await check_partition_count(self._redis, self._keyspace)  # would a worker read where it announces?
        keys = self._keys
        pairs = [value for event in batch for value in event]
        node = await node_for(self._redis, keys.events)
        try:
            written = await node.execute_command(  # type: ignore[no-untyped-call]
                "EVAL",
                _ANNOUNCE_LUA,
                2,
                keys.events,
                keys.dispatch,
                len(batch),
                *pairs,
                *self._dispatch_fields,
            )
        except ResponseError as exc:
            await self._check(exc)
            raise
        if written:
            return
        stored = await self._redis.xrange(keys.events, min="0-1", max="0-1")
        event_json, time_ms = batch[0]
        if not stored or stored[0][1] != {EVENT_FIELD: event_json, TIME_FIELD: time_ms}:
            raise MessageIdInUseError(f"message {self.message_id} already has other events: nothing written")

    async def _check(self, reply: object) -> None:
        if isinstance(reply, ResponseError) and slot_moved(reply):
            await refresh_slots(self._redis)
            raise SlotMovedError(f"slot of {self.message_id} moved: {reply}") from reply
        if isinstance(reply, ResponseError) and _DUPLICATE_ID not in str(reply):
            raise reply
