"""Acceptance: every conformance case through real Redis and an `lcstream worker` subprocess."""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis

from lcstream.streams.frames import Frame
from lcstream.streams.keys import Keyspace
from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_outcome
from tests.conftest import WorkerProcess, conformance_cases
from tests.helpers import all_outcomes, assert_frames_match, collect_pubsub, wait_for

CASES = conformance_cases()


async def test_conformance_cases_through_a_worker_process(
    real_redis: Redis, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    keyspace = Keyspace()
    pubsub = real_redis.pubsub()
    await pubsub.subscribe(*(keyspace.message(c["message_id"]).live for c in CASES))
    worker = spawn_worker()
    for case in CASES:
        await publish_events(real_redis, case["events"], keyspace=keyspace)

    ids = [c["message_id"] for c in CASES]
    await wait_for(lambda: all_outcomes(real_redis, ids), timeout_s=60, what="every outcome")
    stored: dict[str, list[Frame]] = {}
    for case in CASES:
        expected = case["expected"]
        stored[case["message_id"]] = await assert_frames_match(real_redis, case["message_id"], expected)
        outcome = await read_outcome(real_redis, case["message_id"])
        assert outcome is not None
        if "output" in expected:
            assert (outcome.status, outcome.message) == ("completed", expected["output"])
        else:
            assert outcome.status == "failed"
            assert outcome.error is not None and outcome.error["message"] == expected["error"]

    # L(M) carried the same frames with the same seqs.
    total = sum(len(frames) for frames in stored.values())
    payloads = await collect_pubsub(pubsub, done=lambda got: len(got) >= total)
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    channels = {keyspace.message(m).live.encode(): m for m in stored}
    live: dict[str, list[Frame]] = {m: [] for m in stored}
    for channel, payload in payloads:
        live[channels[channel]].append(Frame.from_live(payload))
    assert live == stored

    assert worker.terminate() == 0
    assert any(line["event"] == "stopped" for line in worker.log_lines())
