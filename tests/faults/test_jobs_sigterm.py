"""Acceptance: `lcstream worker --with-jobs` on SIGTERM: both halves follow their grace rules, exit 0.

Grace period 4 s: arq stops taking jobs and gives running ones 3 s; the one that
finishes in time completes, the one that can't is cancelled (its message ends
`cancelled`), and the stream worker, which stopped taking messages at once,
commits both within its 4 s and hands nothing back.
"""

from __future__ import annotations

import time
from pathlib import Path

from redis.asyncio import Redis

from lcstream.streams.ending import MessageState, message_state
from lcstream.streams.jobqueue import enqueue_generation
from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import read_events, read_outcome
from tests.conftest import RedisServer, WorkerProcess
from tests.faults.support import lines_of, logged_at, messages_logged, wait_for_log, worker_base_env
from tests.helpers import wait_for
from tests.integration.processes import run_lcstream
from tests.worker.jobs.models import ALL, MODULE
from tests.worker.jobs.support import in_process_output, job_of, job_settings

GRACE_S = 4
ROOT = str(Path(__file__).resolve().parents[2])


async def test_sigterm_lets_jobs_finish_then_cancels_the_rest_and_the_stream_worker_commits_both(
    fault_redis: Redis, fault_server: RedisServer, tmp_path: Path
) -> None:
    env = {
        **worker_base_env(fault_server.url),
        "LCSTREAM_ALLOWED_MODELS": ",".join(ALL),
        "LCSTREAM_GRACE_PERIOD_S": str(GRACE_S),
        "LCSTREAM_CONSUMER": "both",
        "PYTHONPATH": ROOT,  # the test models live in tests/
    }
    both = WorkerProcess(env, tmp_path / "both.log", "--with-jobs")
    try:
        await wait_for_log(both, "started")
        quick = await enqueue_generation(fault_redis, "short", model=f"{MODULE}:paced_model")  # ~1.5 s
        slow = await enqueue_generation(fault_redis, "long", model=f"{MODULE}:slow_model")  # ~20 s
        await wait_for_log(both, "claimed", messages={quick, slow})

        async def quick_is_streaming() -> bool:
            return int(await fault_redis.xlen(Keyspace().message(quick).events)) >= 3

        await wait_for(quick_is_streaming, what="the quick job to stream")
        terminated_at = time.monotonic()
        both.process.terminate()
        await wait_for_log(both, "stopping")
        late = await enqueue_generation(fault_redis, "too late", model=f"{MODULE}:text_model")
        assert both.wait(timeout_s=GRACE_S + 10) == 0
        elapsed_s = time.monotonic() - terminated_at
    finally:
        both.kill()
    print(f"--with-jobs: SIGTERM -> exit 0 after {elapsed_s:.2f} s (grace period {GRACE_S} s)")
    assert GRACE_S - 1 <= elapsed_s < GRACE_S + 2  # the slow job had its 3 s, then everything stopped

    stopping_at = logged_at(lines_of(both, "stopping")[0])
    (completed,) = lines_of(both, "completed")
    assert completed["message_id"] == quick and logged_at(completed) > stopping_at  # finished in grace
    assert messages_logged(both, "failed") == {slow}
    assert not lines_of(both, "released")  # the stream worker handed nothing back

    settings = job_settings(fault_server.url)
    outcome = await read_outcome(fault_redis, quick)
    assert outcome is not None and outcome.message == await in_process_output(
        settings, f"{MODULE}:paced_model", "short", quick
    )
    cancelled = await read_outcome(fault_redis, slow)
    assert cancelled is not None and cancelled.error == {"message": "cancelled", "code": "cancelled"}
    assert await job_of(fault_redis, quick).result(timeout=1) == {"message_id": quick, "status": "completed"}
    assert await message_state(fault_redis, late) is MessageState.ABSENT  # taken by no one

    # arq queued the cancelled job again; its retry finds the message ended and writes nothing.
    slow_events = len(await read_events(fault_redis, slow))
    done = run_lcstream("worker", "--with-jobs", "--burst", env=env)
    assert done.returncode == 0, done.stderr
    assert await job_of(fault_redis, slow).result(timeout=1) == {"message_id": slow, "status": "failed"}
    assert len(await read_events(fault_redis, slow)) == slow_events
    late_outcome = await read_outcome(fault_redis, late)
    assert late_outcome is not None and late_outcome.status == "completed"
