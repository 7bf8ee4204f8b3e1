"""`subscribe_run()`: the frames of every message of a run R, tagged with their message, resumable.

Each message of the run is followed with `subscribe()` as soon as the run's
index lists it, so messages that stream at the same time (parallel branches)
interleave as their frames come. Every item carries a cursor: the last seq
given of each message, in the order they started (`"12.40.0"`). Passed back as
`after`, it resumes with exactly the frames not given yet, whichever order the
messages then interleave in. The iteration ends with the run (`RunFailedError`
for a failed one, after every frame of every message).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from lcstream.streams.cluster import LiveChannels, LiveSubscription, RedisClient
from lcstream.streams.frames import Frame
from lcstream.streams.keys import Keyspace, default_keyspace
from lcstream.streams.reader import DEFAULT_WAIT_FOR_START_S
from lcstream.streams.run_follow import DEFAULT_RUN_IDLE_TIMEOUT_S, follow_run_index
from lcstream.streams.run_index import RunMember
from lcstream.streams.subscribe import subscribe

CURSOR = re.compile(r"\d{1,18}(\.\d{1,18}){0,9999}")
QUEUE_FRAMES = 1024  # frames read ahead of the consumer, across the run's messages


@dataclass(frozen=True, slots=True)
class RunFrame:
    """One frame of message `message_id`, the `index`-th message of the run, and the cursor after it."""

    message_id: str
    index: int
    frame: Frame
    cursor: str


@dataclass(frozen=True, slots=True)
class _Ended:
    error: BaseException | None


def parse_cursor(cursor: str | None) -> list[int]:
    """The seqs of a `RunFrame.cursor` (empty for None: from the start).

    Raises:
        ValueError: not a cursor.
    """
    if cursor is None or cursor == "":
        return []
    if not CURSOR.fullmatch(cursor):
        raise ValueError(f"invalid run cursor {cursor[:40]!r}: seqs separated by '.'")
    return [int(seq) for seq in cursor.split(".")]


async def subscribe_run(
    redis: RedisClient,
    run_id: str,
    *,
    after: str | None = None,
    keyspace: Keyspace | None = None,
    block_ms: int = 1000,
    wait_for_start_s: float | None = DEFAULT_WAIT_FOR_START_S,
    run_idle_timeout_s: float = DEFAULT_RUN_IDLE_TIMEOUT_S,
    live: LiveChannels = LiveSubscription,
) -> AsyncIterator[RunFrame]:
    """Yield the frames of R's messages after the cursor `after`, until the run ends.

    Raises:
        ValueError: `after` is not a cursor.
        MessageNotFoundError: R (or a message it lists) never appeared within `wait_for_start_s`.
        RunFailedError: R ended failed or interrupted, after every frame was yielded.
    """
    space = keyspace or default_keyspace()
    given = parse_cursor(after)
    queue: asyncio.Queue[tuple[RunMember, Frame] | _Ended] = asyncio.Queue(QUEUE_FRAMES)

    async def forward(member: RunMember) -> None:
        start = given[member.index] if member.index < len(given) else 0
        async for frame in subscribe(
            redis,
            member.message_id,
            after=start,
            keyspace=space,
            wait_for_start_s=wait_for_start_s,
            live=live,
        ):
            await queue.put((member, frame))

    async def feed() -> None:
        followers: list[asyncio.Task[None]] = []
        error: BaseException | None = None
        try:
            try:
                async for member in follow_run_index(
                    redis, run_id, space, block_ms=block_ms, wait_for_start_s=wait_for_start_s,
                    run_idle_timeout_s=run_idle_timeout_s,
                ):  # fmt: skip
                    followers.append(
                        asyncio.create_task(forward(member), name=f"run:{run_id}:{member.index}")
                    )
            except Exception as exc:  # the run failed (or never appeared): its messages still end first
                error = exc
            results = await asyncio.gather(*followers, return_exceptions=True)
        except asyncio.CancelledError:  # the consumer stopped: so do the followers
            for follower in followers:
                follower.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            raise
        failures = [r for r in results if isinstance(r, Exception)]
        await queue.put(_Ended(failures[0] if failures else error))

    positions = list(given)
    feeder = asyncio.create_task(feed(), name=f"run:{run_id}")
    try:
        while not isinstance(item := await queue.get(), _Ended):
            member, frame = item
            positions.extend([0] * (member.index + 1 - len(positions)))
            positions[member.index] = frame.seq
            yield RunFrame(member.message_id, member.index, frame, ".".join(map(str, positions)))
        if item.error is not None:
            raise item.error
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
