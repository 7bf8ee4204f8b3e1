"""`attach()`: a real langchain-core `AsyncChatModelStream` fed from `E(M)`, in any process.

Live while the message is in flight, a full replay once it is stored. It
starts lazily on first consumption and reads more from Redis only when a
consumer's buffer runs dry (`set_arequest_more`), so a slow consumer never
makes it buffer without bound.
"""

from __future__ import annotations

import asyncio
import time

from langchain_core.language_models.chat_model_stream import AsyncChatModelStream

from lcstream.streams.cluster import RedisClient
from lcstream.streams.errors import MessageFailedError, MessageNotFoundError
from lcstream.streams.events import EventLimits
from lcstream.streams.keys import Keyspace, MessageKeys, default_keyspace
from lcstream.streams.ordering import EventOrder, check_entries
from lcstream.streams.reader import DEFAULT_WAIT_FOR_START_S, read_outcome


class AttachedStream(AsyncChatModelStream):
    """An `AsyncChatModelStream` whose events come from Redis; `aclose()` ends it for its consumers."""

    async def aclose(self) -> None:
        """Stop reading; consumers still waiting see the stream cancelled."""
        if not self.done:
            self.fail(asyncio.CancelledError())


class _Pump:
    """Reads `E(M)` for one attached stream; one read at a time, however many consumers pull."""

    def __init__(
        self,
        redis: RedisClient,
        keys: MessageKeys,
        keyspace: Keyspace,
        stream: AttachedStream,
        *,
        block_ms: int,
        read_count: int,
        wait_for_start_s: float | None,
        limits: EventLimits,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._keyspace = keyspace
        self._stream = stream
        self._block_ms = block_ms
        self._read_count = read_count
        self._limits = limits
        self._order = EventOrder(max_events=10**9)
        self._cursor: bytes = b"0-0"
        self._lock = asyncio.Lock()
        self._dispatched = 0
        self._give_up_at = None if wait_for_start_s is None else time.monotonic() + wait_for_start_s

    async def start(self) -> None:
        """Nothing to start: the first pull reads."""

    async def pull(self) -> bool:
        """Dispatch the next events; False once the stream ended."""
        seen = self._dispatched
        async with self._lock:
            stream = self._stream
            if stream.done:
                return False
            if self._dispatched != seen:
                return True  # another consumer's pull brought events while we waited
            reply = await self._redis.xread(
                {self._keys.events: self._cursor}, count=self._read_count, block=self._block_ms
            )
            for _, entries in reply or ():
                self._cursor = entries[-1][0]
                checked, failure = check_entries(entries, self._limits, self._order, self._keys.events)
                for _, event in checked:
                    try:
                        stream.dispatch(event)
                    except Exception as exc:  # as the in-process driver does: fail after what came before
                        stream.fail(exc)
                        return False
                    self._dispatched += 1
                if failure is not None:  # the checks a worker makes: the same message fails the same way
                    stream.fail(failure)
                    return False
                if stream.done:
                    return False
            if not reply:
                await self._on_quiet()
            return not stream.done

    async def _on_quiet(self) -> None:
        """No event within the block: the worker may have ended the message for a reason outside its
        events (idle timeout, delivery limit), or the message may not exist."""
        outcome = await read_outcome(self._redis, self._keys.message_id, self._keyspace)
        if outcome is not None and outcome.error is not None:
            error = outcome.error
            self._stream.fail(MessageFailedError(self._keys.message_id, error["message"], error["code"]))
        elif self._dispatched == 0 and self._give_up_at is not None and time.monotonic() > self._give_up_at:
            self._stream.fail(MessageNotFoundError(f"no message {self._keys.message_id}: no events"))


def attach(
    redis: RedisClient,
    message_id: str,
    *,
    keyspace: Keyspace | None = None,
    block_ms: int = 1000,
    read_count: int = 512,
    wait_for_start_s: float | None = DEFAULT_WAIT_FOR_START_S,
    limits: EventLimits | None = None,
    namespace: list[str] | None = None,
    node: str | None = None,
) -> AttachedStream:
    """A real `AsyncChatModelStream` of message M, fed from Redis as it is consumed.

    Use it like the stream `astream_events(version="v3")` returns:
    `async for delta in stream.text`, `await stream.output`, `await stream`.
    `wait_for_start_s` bounds how long it waits for a message with no events
    yet (None: wait for the producer as long as it takes). `namespace` and
    `node` label the stream as LangGraph's `run.messages` does (`attach_run`
    passes those of the run's index).
    """
    space = keyspace or default_keyspace()
    keys = space.message(message_id)
    stream = AttachedStream(message_id=message_id, namespace=namespace, node=node)
    pump = _Pump(
        redis, keys, space, stream,
        block_ms=block_ms, read_count=read_count, wait_for_start_s=wait_for_start_s,
        limits=limits or EventLimits(),
    )  # fmt: skip
    stream.set_start(pump.start)
    stream.set_arequest_more(pump.pull)
    return stream
