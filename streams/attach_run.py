"""`attach_run()`: every message of a run R, as real `AsyncChatModelStream`s, in any process.

It follows the run's index `X(R)` (`run_follow`) and yields one `attach()`ed
stream per message in the order they started, with the namespace and node
LangGraph gave the call, as `run.messages` does in-process. It ends with the
run, or raises `RunFailedError` (after yielding every message that ran) when
the run failed; a run whose producer died is ended within a bound (`run_follow`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from lcstream.streams.attach import AttachedStream, attach
from lcstream.streams.cluster import RedisClient
from lcstream.streams.keys import Keyspace, default_keyspace
from lcstream.streams.reader import DEFAULT_WAIT_FOR_START_S
from lcstream.streams.run_follow import DEFAULT_RUN_IDLE_TIMEOUT_S, follow_run_index


async def attach_run(
    redis: RedisClient,
    run_id: str,
    *,
    keyspace: Keyspace | None = None,
    block_ms: int = 1000,
    wait_for_start_s: float | None = DEFAULT_WAIT_FOR_START_S,
    run_idle_timeout_s: float = DEFAULT_RUN_IDLE_TIMEOUT_S,
) -> AsyncIterator[AttachedStream]:
    """Yield an `AsyncChatModelStream` per message of run R, in start order, live or replayed.

    Raises:
        MessageNotFoundError: R has no index within `wait_for_start_s` (None: wait as long as it takes).
        RunFailedError: R ended failed or interrupted (after every message that ran was yielded).
    """
    space = keyspace or default_keyspace()
    async for member in follow_run_index(
        redis, run_id, space,
        block_ms=block_ms, wait_for_start_s=wait_for_start_s, run_idle_timeout_s=run_idle_timeout_s,
    ):  # fmt: skip
        yield attach(
            redis, member.message_id, keyspace=space, block_ms=block_ms, wait_for_start_s=wait_for_start_s,
            namespace=member.namespace, node=member.node,
        )  # fmt: skip
