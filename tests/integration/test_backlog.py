"""Acceptance: 200 preloaded messages of 500 text tokens through one worker process, all correct."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.language_models._compat_bridge import chunks_to_events
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from redis.asyncio import Redis

from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_outcome
from tests.conftest import WorkerProcess
from tests.helpers import in_process_oracle

MESSAGES = 200
TOKENS = 500


def message_events(n: int) -> list[dict[str, Any]]:
    tokens = [AIMessageChunk(content=f"m{n}t{i} ") for i in range(TOKENS)]
    tokens.append(
        AIMessageChunk(
            content="",
            usage_metadata={"input_tokens": n, "output_tokens": TOKENS, "total_tokens": n + TOKENS},
        )
    )
    chunks = iter([ChatGenerationChunk(message=chunk) for chunk in tokens])
    return [dict(e) for e in chunks_to_events(chunks, message_id=f"backlog-{n}")]


async def test_preloaded_backlog_through_one_worker_process(
    real_redis: Redis, spawn_worker: Callable[..., WorkerProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    all_events = [message_events(n) for n in range(MESSAGES)]
    await asyncio.gather(*(publish_events(real_redis, events) for events in all_events))
    total_events = sum(len(events) for events in all_events)

    started = time.monotonic()
    worker = spawn_worker("--burst")
    assert worker.wait(timeout_s=240) == 0
    wall_s = time.monotonic() - started

    for n, events in enumerate(all_events):
        outcome = await read_outcome(real_redis, f"backlog-{n}")
        expected = await in_process_oracle(events, f"backlog-{n}")
        assert outcome is not None
        assert (outcome.status, outcome.message) == ("completed", expected["output"])
    stopped = next(line for line in worker.log_lines() if line["event"] == "stopped")
    assert stopped["events"] == total_events
    assert stopped["completed"] == MESSAGES
    with capsys.disabled():
        print(
            f"\nbacklog: {MESSAGES} messages x {TOKENS} tokens = {total_events} events; "
            f"worker loop {stopped['elapsed_s']} s = {stopped['events_per_s']} events/s; "
            f"process wall time incl. start-up {wall_s:.2f} s = {total_events / wall_s:.0f} events/s"
        )
