"""Waiting on conditions with deadlines (never a bare sleep as synchronization)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class DeadlineError(RuntimeError):
    """A condition did not hold in time."""


async def poll_until(
    condition: Callable[[], Awaitable[bool]], *, timeout_s: float, interval_s: float = 0.02, what: str
) -> float:
    """Check `condition` every `interval_s` until true; return the seconds waited; raise after `timeout_s`."""
    started = time.monotonic()
    while not await condition():
        waited = time.monotonic() - started
        if waited > timeout_s:
            raise DeadlineError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)
    return time.monotonic() - started
