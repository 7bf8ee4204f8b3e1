"""`result()`: wait for a message's outcome from anywhere and return its `AIMessage`."""

from __future__ import annotations

import time

from langchain_core.messages import AIMessage, messages_from_dict

from lcstream.streams.cluster import LiveSubscription, RedisClient
from lcstream.streams.errors import MessageFailedError, MessageNotFoundError
from lcstream.streams.frames import TERMINAL_KINDS, Frame, Outcome
from lcstream.streams.keys import Keyspace, default_keyspace
from lcstream.streams.reader import DEFAULT_WAIT_FOR_START_S, read_outcome


async def result(
    redis: RedisClient,
    message_id: str,
    timeout_s: float | None = None,
    *,
    keyspace: Keyspace | None = None,
    poll_s: float = 1.0,
    wait_for_start_s: float | None = DEFAULT_WAIT_FOR_START_S,
) -> AIMessage:
    """The assembled `AIMessage` of M, waiting up to `timeout_s` (None: as long as it takes).

    Raises:
        MessageFailedError: the message ended failed (its code and message).
        MessageNotFoundError: nothing of M (events, frames, outcome) appeared within
            `wait_for_start_s` (None: wait for its producer, e.g. a queued job).
        TimeoutError: no outcome within `timeout_s`.
    """
    keys = (keyspace or default_keyspace()).message(message_id)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    give_up_at = None if wait_for_start_s is None else time.monotonic() + wait_for_start_s
    # Subscribed before the first read, so the end can't slip between.
    live = await LiveSubscription.open(redis, keys.live)
    try:
        while True:
            outcome = await read_outcome(redis, message_id, keyspace)
            if outcome is not None:
                return _message_of(message_id, outcome)
            if give_up_at is not None and time.monotonic() > give_up_at:
                if not await redis.exists(keys.events, keys.out):
                    raise MessageNotFoundError(f"no message {message_id}: no events, frames or outcome")
                give_up_at = None  # it exists: from now on only `timeout_s` bounds the wait
            await _until_terminal_frame(live, poll_s, deadline, message_id, timeout_s)
    finally:
        await live.aclose()


async def _until_terminal_frame(
    live: LiveSubscription, poll_s: float, deadline: float | None, message_id: str, timeout_s: float | None
) -> None:
    """Return when a terminal frame was published, or after `poll_s` (a missed publish is
    caught by the caller's next read of `R(M)`)."""
    poll_ends = time.monotonic() + poll_s
    while True:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise TimeoutError(f"no outcome for {message_id} within {timeout_s} s")
        ends = poll_ends if deadline is None else min(poll_ends, deadline)
        if now >= ends:
            return
        payload = await live.get(ends - now)
        if payload is not None and Frame.from_live(payload).kind in TERMINAL_KINDS:
            return


def _message_of(message_id: str, outcome: Outcome) -> AIMessage:
    if outcome.error is not None:
        raise MessageFailedError(message_id, outcome.error["message"], outcome.error["code"])
    assert outcome.message is not None
    message = messages_from_dict([outcome.message])[0]
    assert isinstance(message, AIMessage)
    return message
