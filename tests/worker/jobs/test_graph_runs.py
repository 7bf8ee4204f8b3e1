"""Graph runs as background jobs, as users run them: `lcstream worker --with-jobs`, `lcstream enqueue
--graph`, `tail --run`, `replay --run --diff`, `cancel R`, followed with `attach_run` from this process."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from lcstream.streams.attach_run import attach_run
from lcstream.streams.errors import RunFailedError
from lcstream.streams.jobqueue import cancel_graph_run, enqueue_graph_run, is_graph_run
from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import read_outcome
from lcstream.streams.run_index import run_status
from tests.conftest import WorkerProcess
from tests.helpers import wait_for
from tests.integration.processes import run_lcstream
from tests.streams.agent_graph import State, build_graph, describe
from tests.streams.test_runs import without_ids

ROOT = str(Path(__file__).resolve().parents[3])
SPACE = Keyspace()
GRAPHS = "tests.streams.agent_graph:agent,tests.streams.agent_graph:slow_agent"


def job_worker(spawn_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    return spawn_worker("--with-jobs", LCSTREAM_ALLOWED_GRAPHS=GRAPHS, PYTHONPATH=ROOT)


async def test_a_graph_run_job_publishes_langgraph_s_own_messages_and_the_cli_follows_it(
    real_redis: Redis, worker_env: dict[str, str], spawn_worker: Callable[..., WorkerProcess]
) -> None:
    job_worker(spawn_worker)
    warnings.filterwarnings("ignore", message=".*v3 streaming protocol.*")
    run = await build_graph().astream_events(State(notes=[]), version="v3")
    oracle = [await describe(stream) async for stream in run.messages]
    env = {**worker_env, "PYTHONPATH": ROOT}
    enqueued = run_lcstream("enqueue", "--graph", "tests.streams.agent_graph:agent", '{"notes": []}', env=env)
    assert enqueued.returncode == 0, enqueued.stderr
    run_id = enqueued.stdout.strip()
    followed = [await describe(stream) async for stream in attach_run(real_redis, run_id, keyspace=SPACE)]
    assert without_ids(followed) == without_ids(oracle)
    replayed = run_lcstream("replay", "--run", run_id, "--diff", env=env)
    assert replayed.returncode == 0, replayed.stderr
    assert [line.split("\t")[1:] for line in replayed.stdout.splitlines()] == [
        ["plan", "equal"], ["answer", "equal"], ["answer", "equal"]
    ]  # fmt: skip
    tailed = run_lcstream("tail", "--run", run_id, env=env)
    assert tailed.returncode == 0, tailed.stderr
    assert tailed.stdout.count("── ") == 3 and "It is sunny in Paris and the time is noon." in tailed.stdout
    again = run_lcstream("enqueue", "--graph", "tests.streams.agent_graph:agent", "not json", env=env)
    assert again.returncode == 2 and "JSON object" in again.stderr
    # A graph the worker does not allow: the run ends at once, and its follower hears why.
    refused = run_lcstream(
        "enqueue", "--graph", "tests.streams.agent_graph:build_graph", "{}", "--follow", env=env
    )
    assert refused.returncode == 1 and "invalid_graph" in refused.stderr, refused.stderr


async def test_cancel_stops_a_running_graph_and_its_run_ends_cancelled(
    real_redis: Redis, worker_env: dict[str, str], spawn_worker: Callable[..., WorkerProcess]
) -> None:
    job_worker(spawn_worker)
    env = {**worker_env, "PYTHONPATH": ROOT}
    enqueued = run_lcstream(
        "enqueue", "--graph", "tests.streams.agent_graph:slow_agent", '{"notes": []}', env=env
    )
    run_id = enqueued.stdout.strip()

    async def streaming() -> bool:
        return bool(await real_redis.exists(SPACE.run(run_id).index))

    await wait_for(streaming, timeout_s=30, what="the graph to start")
    cancelled = await asyncio.to_thread(run_lcstream, "cancel", run_id, env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"{run_id} cancelled"
    with pytest.raises(RunFailedError) as failed:
        async for _ in attach_run(real_redis, run_id, keyspace=SPACE):
            pass
    assert (failed.value.status, failed.value.code) == ("failed", "cancelled")
    members = [f[b"m"].decode() for _, f in await real_redis.xrange(SPACE.run(run_id).index) if b"m" in f]

    async def every_message_ended() -> bool:
        return all([await read_outcome(real_redis, m, SPACE) is not None for m in members])

    await wait_for(every_message_ended, timeout_s=30, what="the cancelled call's message to end")
    last = await read_outcome(real_redis, members[-1], SPACE)
    assert last is not None and last.error is not None and last.error["code"] == "cancelled"
    late = run_lcstream("cancel", run_id, env=env)
    assert late.returncode == 1  # it had ended already


async def test_a_run_still_queued_is_cancelled_before_it_starts(real_redis: Redis) -> None:
    run_id = await enqueue_graph_run(
        real_redis, "tests.streams.agent_graph:agent", {"notes": []}, keyspace=SPACE
    )
    assert await run_status(real_redis, SPACE, run_id) is None  # no worker: nothing ran, no index yet
    assert await is_graph_run(real_redis, run_id, keyspace=SPACE)  # its queued job says it is a run
    assert await cancel_graph_run(real_redis, run_id, keyspace=SPACE, wait_s=0) == (None, "failed")
    with pytest.raises(RunFailedError) as failed:
        async for _ in attach_run(real_redis, run_id, keyspace=SPACE):
            pass
    assert (failed.value.code, failed.value.error_message) == ("cancelled", "cancelled before it started")
