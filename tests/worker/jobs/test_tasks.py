"""The arq jobs in-process on the real redis-server: generate, cancel, retries, reassemble."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from lcstream.streams.ending import MessageState
from lcstream.streams.errors import InvalidMessageIdError, MessageIdInUseError
from lcstream.streams.frames import FrameKind
from lcstream.streams.jobqueue import (
    cancel_generation,
    enqueue_generation,
    enqueue_reassembly,
    new_message_id,
)
from lcstream.streams.keys import Keyspace
from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_events, read_frames, read_outcome
from lcstream.worker.jobs.tasks import generate, reassemble
from tests.conftest import RedisServer
from tests.helpers import wait_for
from tests.integration.processes import LCSTREAM, lcstream_env
from tests.worker.jobs import models as job_models
from tests.worker.jobs.models import FAST, MODULE, PROVIDER_ERROR
from tests.worker.jobs.support import (
    in_process_output,
    job_of,
    job_settings,
    run_job_burst,
    run_stream_burst,
    serving,
)

KEYS = Keyspace()


async def test_twenty_jobs_store_what_the_same_models_make_in_process(
    real_redis: Redis, redis_server: RedisServer
) -> None:
    settings = job_settings(redis_server.url)
    requests = [(FAST[i % len(FAST)], f"question {i}") for i in range(20)]
    ids = [await enqueue_generation(real_redis, prompt, model=model) for model, prompt in requests]
    assert len(set(ids)) == 20
    queued = await real_redis.get(f"arq:job:{ids[0]}")
    assert orjson.loads(queued)["k"] == {"model": FAST[0], "message_id": ids[0]}  # JSON, not pickle

    jobs = await run_job_burst(real_redis, settings)
    assert (jobs.jobs_complete, jobs.jobs_failed, jobs.jobs_retried) == (20, 0, 0)
    streams = await run_stream_burst(real_redis, settings)
    assert streams.stats.completed == 20

    tool_calls = 0
    for message_id, (model, prompt) in zip(ids, requests, strict=True):
        outcome = await read_outcome(real_redis, message_id)
        assert outcome is not None and outcome.status == "completed", outcome
        assert outcome.message == await in_process_output(settings, model, prompt, message_id)
        assert outcome.message is not None and outcome.message["data"]["id"] == message_id
        tool_calls += len(outcome.message["data"]["tool_calls"])
        frames = await read_frames(real_redis, message_id)
        assert frames[-1].kind is FrameKind.OUTPUT and frames[-1].data == outcome.message
        assert await job_of(real_redis, message_id).result(timeout=5) == {
            "message_id": message_id, "status": "completed"
        }  # fmt: skip
    assert tool_calls == 5 * (1 + 2 + 1)  # tool_model, reasoning_tools_model (two), mixed_model


async def test_a_model_failing_mid_stream_fails_its_message_with_the_providers_error(
    real_redis: Redis, redis_server: RedisServer
) -> None:
    settings = job_settings(redis_server.url)
    message_id = await enqueue_generation(real_redis, "hi", model=f"{MODULE}:failing_model")
    jobs = await run_job_burst(real_redis, settings)
    assert jobs.jobs_complete == 1  # the job did its work: the message failed, not the job
    await run_stream_burst(real_redis, settings)
    outcome = await read_outcome(real_redis, message_id)
    assert outcome is not None
    assert outcome.error == {"message": PROVIDER_ERROR, "code": "model_error"}
    frames = await read_frames(real_redis, message_id)
    assert "".join(f.data for f in frames if f.kind is FrameKind.TEXT) == "This answer will not"
    assert frames[-1].kind is FrameKind.ERROR
    assert await job_of(real_redis, message_id).result(timeout=5) == {
        "message_id": message_id, "status": "failed"
    }  # fmt: skip


async def test_lcstream_cancel_ends_a_running_generation_within_two_seconds(
    real_redis: Redis, redis_server: RedisServer
) -> None:
    settings = job_settings(redis_server.url)
    message_id = await enqueue_generation(real_redis, "a long answer", model=f"{MODULE}:slow_model")
    keys = KEYS.message(message_id)

    async def cancelled() -> bool:
        outcome = await read_outcome(real_redis, message_id)
        return outcome is not None and outcome.error is not None and outcome.error["code"] == "cancelled"

    async with serving(real_redis, settings):

        async def dashboards_see_it_streaming() -> bool:
            return int(await real_redis.xlen(keys.out)) >= 5

        await wait_for(dashboards_see_it_streaming, timeout_s=20, what="frames of the slow model")
        started_at = time.monotonic()
        command = await asyncio.create_subprocess_exec(
            LCSTREAM, "cancel", message_id, env=lcstream_env(redis_server.url),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await wait_for(cancelled, timeout_s=10, what="the cancelled outcome")
        elapsed_s = time.monotonic() - started_at
        out, errors = await command.communicate()
    print(f"lcstream cancel -> failed outcome with code cancelled: {elapsed_s:.2f} s")
    assert elapsed_s < 2.0
    assert command.returncode == 0, errors
    assert out.decode().strip() == f"{message_id} cancelled"
    frames = await read_frames(real_redis, message_id)
    assert frames[-1].kind is FrameKind.ERROR and frames[-1].data["code"] == "cancelled"
    assert sum(f.kind is FrameKind.TEXT for f in frames) < 400  # stopped mid-generation
    events = await read_events(real_redis, message_id)
    assert [e["event"] for e in events].count("error") == 1 and events[-1]["event"] == "error"
    with pytest.raises(asyncio.CancelledError):  # arq recorded an abort (read back through the JSON codec)
        await job_of(real_redis, message_id).result(timeout=5)


async def test_cancelling_a_queued_job_ends_its_message_and_the_job_never_runs(
    real_redis: Redis, redis_server: RedisServer
) -> None:
    settings = job_settings(redis_server.url)
    message_id = await enqueue_generation(real_redis, "never mind", model=f"{MODULE}:text_model")
    cancellation = await cancel_generation(real_redis, message_id, wait_s=1)
    assert cancellation.cancelled
    assert (cancellation.found, cancellation.state) == (MessageState.ABSENT, MessageState.FAILED)
    jobs = await run_job_burst(real_redis, settings)
    assert (jobs.jobs_complete, jobs.jobs_failed) == (0, 1)  # aborted before it started
    assert [e["event"] for e in await read_events(real_redis, message_id)] == ["error"]
    await run_stream_burst(real_redis, settings)
    outcome = await read_outcome(real_redis, message_id)
    assert outcome is not None
    assert outcome.error == {"message": "cancelled before it started", "code": "cancelled"}
    with pytest.raises(asyncio.CancelledError):
        await job_of(real_redis, message_id).result(timeout=5)

    again = await cancel_generation(real_redis, message_id)
    assert not again.cancelled and again.found is MessageState.FAILED
    unknown = await cancel_generation(real_redis, new_message_id())
    assert (unknown.found, unknown.state, unknown.cancelled) == (MessageState.ABSENT,) * 2 + (False,)


async def partial_message(redis: Redis, events: int) -> str:
    """A message whose producer died after `events` events (the first ones of a real model run)."""
    message_id = new_message_id()
    stream = await job_models.text_model().astream_events("hi", version="v3")
    produced = [dict(event) async for event in stream]
    assert len(produced) > events
    await publish_events(redis, produced[:events], message_id=message_id)
    return message_id


async def test_a_retry_never_writes_a_second_generation_into_a_message(
    real_redis: Redis, redis_server: RedisServer
) -> None:
    settings = job_settings(redis_server.url)

    def ctx(attempt: int) -> dict[str, Any]:
        return {"settings": settings, "redis": real_redis, "job_try": attempt}

    # Died before its first event: nobody saw anything, so the retry generates.
    fresh = new_message_id()
    assert await generate(ctx(2), "hi", message_id=fresh) == {"message_id": fresh, "status": "completed"}
    # Died mid-generation: the retry ends the message at once, after the events already written.
    written = 4
    open_id = await partial_message(real_redis, written)
    assert await generate(ctx(2), "hi", message_id=open_id) == {"message_id": open_id, "status": "failed"}
    events = await read_events(real_redis, open_id)
    assert len(events) == written + 1
    assert events[-1]["event"] == "error" and events[-1]["code"] == "producer_lost"
    # Ended already: the retry reports it and writes nothing.
    assert await generate(ctx(3), "hi", message_id=open_id) == {"message_id": open_id, "status": "failed"}
    assert await generate(ctx(2), "hi", message_id=fresh) == {"message_id": fresh, "status": "completed"}
    assert len(await read_events(real_redis, open_id)) == written + 1
    # A first attempt finding someone else's open message leaves it alone.
    other_id = await partial_message(real_redis, 3)
    with pytest.raises(MessageIdInUseError):
        await generate(ctx(1), "hi", message_id=other_id)
    assert len(await read_events(real_redis, other_id)) == 3

    await run_stream_burst(real_redis, settings.model_copy(update={"idle_timeout_s": 0.5}))
    lost = await read_outcome(real_redis, open_id)
    assert lost is not None and lost.error is not None and lost.error["code"] == "producer_lost"
    done = await read_outcome(real_redis, fresh)
    assert done is not None and done.message == await in_process_output(settings, FAST[0], "hi", fresh)


async def test_a_job_may_only_run_the_models_the_settings_allow(
    real_redis: Redis, redis_server: RedisServer
) -> None:
    settings = job_settings(redis_server.url)
    forbidden = await enqueue_generation(real_redis, "hi", model=f"{MODULE}:forbidden_model")
    not_a_model = await enqueue_generation(real_redis, "hi", model=f"{MODULE}:not_a_model")
    default = await enqueue_generation(real_redis, "hi")  # LCSTREAM_MODEL
    await run_job_burst(real_redis, settings)
    await run_stream_burst(real_redis, settings)
    assert job_models.FORBIDDEN_CALLS == []  # refused before its factory was called
    for message_id, text in ((forbidden, "is not LCSTREAM_MODEL"), (not_a_model, "not a chat model")):
        outcome = await read_outcome(real_redis, message_id)
        assert outcome is not None and outcome.error is not None
        assert outcome.error["code"] == "invalid_model" and text in outcome.error["message"]
    outcome = await read_outcome(real_redis, default)
    assert outcome is not None and outcome.status == "completed"


async def test_enqueue_refuses_ids_in_use_and_bad_arguments(real_redis: Redis) -> None:
    message_id = await enqueue_generation(real_redis, "hi", message_id="chatcmpl-42")
    assert message_id == "chatcmpl-42"
    with pytest.raises(MessageIdInUseError):
        await enqueue_generation(real_redis, "hi", message_id="chatcmpl-42")
    stored = await partial_message(real_redis, 2)
    with pytest.raises(MessageIdInUseError):
        await enqueue_generation(real_redis, "hi", message_id=stored)
    with pytest.raises(InvalidMessageIdError):
        await enqueue_generation(real_redis, "hi", message_id="bad id{0}")
    with pytest.raises(ValueError, match="module:factory"):
        await enqueue_generation(real_redis, "hi", model="os.system")
    with pytest.raises(TypeError):
        await enqueue_generation(real_redis, 42)  # type: ignore[arg-type]
    assert await real_redis.zcard(KEYS.job_queue) == 1


async def test_reassemble_rewrites_a_changed_outcome_and_its_frames_only(
    real_redis: Redis, redis_server: RedisServer
) -> None:
    settings = job_settings(redis_server.url)
    message_id = await enqueue_generation(real_redis, "hi", model=f"{MODULE}:tool_model")
    await run_job_burst(real_redis, settings)
    await run_stream_burst(real_redis, settings)
    open_id = await partial_message(real_redis, 3)
    keys = KEYS.message(message_id)
    outcome, frames = await read_outcome(real_redis, message_id), await read_frames(real_redis, message_id)
    assert outcome is not None and outcome.status == "completed"
    ctx = {"settings": settings, "redis": real_redis}
    assert await reassemble(ctx, message_id) == {
        "message_id": message_id,
        "status": "completed",
        "changed": False,
    }

    # What an older assembly might have stored: no usage, and frames cut short.
    assert outcome.message is not None
    stale = {**outcome.message, "data": {**outcome.message["data"], "usage_metadata": None}}
    await real_redis.set(keys.result, orjson.dumps({"status": "completed", "message": stale}), keepttl=True)
    await real_redis.xdel(keys.out, f"0-{frames[-1].seq}")
    ttl_before = await real_redis.pttl(keys.result)
    job_id = await enqueue_reassembly(real_redis, message_id)
    await run_job_burst(real_redis, settings)
    assert await job_of(real_redis, job_id).result(timeout=5) == {
        "message_id": message_id, "status": "completed", "changed": True
    }  # fmt: skip
    assert await read_outcome(real_redis, message_id) == outcome
    assert await read_frames(real_redis, message_id) == frames
    assert 0 < await real_redis.pttl(keys.out) <= ttl_before
    assert 0 < await real_redis.pttl(keys.result) <= ttl_before

    # A message still in flight belongs to its worker: untouched.
    assert await reassemble(ctx, open_id) == {"message_id": open_id, "status": "open", "changed": False}
    assert not await real_redis.exists(KEYS.message(open_id).out, KEYS.message(open_id).result)
