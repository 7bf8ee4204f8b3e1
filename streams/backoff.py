"""Retrying Redis work through connection faults: exponential back-off with jitter, never a tight loop."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from redis.exceptions import (
    AuthenticationError,
    ExecAbortError,
    OutOfMemoryError,
    ReadOnlyError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lcstream.streams.errors import RedisUnavailableError, SlotMovedError

T = TypeVar("T")

# Faults that pass: a lost or stalled connection, a restart still loading, a failover (a replica that
# is read-only for now), memory full under `noeviction` until retention frees it. A wrong password
# is not among them: it is a ConnectionError in redis-py but retrying can't fix it.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    OutOfMemoryError,
    ExecAbortError,
    ReadOnlyError,
    TryAgainError,
    SlotMovedError,
)


def cancel_requested() -> bool:
    """Whether the running task was asked to stop, even if a library swallowed the `CancelledError`
    (`asyncio.wait_for` can on Python 3.11, and fakeredis uses it): endless loops check it."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def is_transient(exc: BaseException) -> bool:
    """Whether retrying with back-off can fix `exc`."""
    return isinstance(exc, TRANSIENT_ERRORS) and not isinstance(exc, AuthenticationError)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays `first_s, 2*first_s, …` capped at `max_s`, each scaled by a random 0.5-1.5."""

    first_s: float = 0.05
    max_s: float = 2.0

    def delays(self) -> Iterator[float]:
        """An endless series of jittered delays."""
        delay = self.first_s
        while True:
            yield delay * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, self.max_s)


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    deadline_s: float | None,
    backoff: Backoff = Backoff(),
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Run `operation` until it succeeds, retrying Redis connection faults.

    Raises:
        RedisUnavailableError: still failing after `deadline_s` (None: never give up).
    """
    loop = asyncio.get_running_loop()
    give_up_at = None if deadline_s is None else loop.time() + deadline_s
    delays = backoff.delays()
    while True:
        try:
            return await operation()
        except TRANSIENT_ERRORS as exc:
            if not is_transient(exc):
                raise
            delay_s = next(delays)
            if give_up_at is not None and loop.time() + delay_s > give_up_at:
                raise RedisUnavailableError(f"{what}: Redis unavailable: {exc}") from exc
            if on_retry is not None:
                on_retry(exc, delay_s)
            await asyncio.sleep(delay_s)
