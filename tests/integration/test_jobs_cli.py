"""`lcstream enqueue` (and `--follow`) against `lcstream worker --with-jobs`, end to end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lcstream.streams.jobqueue import run_id_of
from tests.conftest import WorkerProcess
from tests.integration.processes import lcstream_env, run_lcstream
from tests.worker.jobs.models import ALL, FAST

ROOT = Path(__file__).resolve().parents[2]


def test_enqueue_prints_the_id_then_follows_the_message_to_its_outcome(
    worker_env: dict[str, str], spawn_worker: Callable[..., WorkerProcess]
) -> None:
    env = {**worker_env, "PYTHONPATH": str(ROOT), "COLUMNS": "400"}
    env.update(LCSTREAM_MODEL=FAST[1], LCSTREAM_ALLOWED_MODELS=",".join(ALL))
    spawn_worker("--with-jobs", **env)
    done = run_lcstream("enqueue", "--follow", "look it up", env=env)
    assert done.returncode == 0, done.stderr
    first, *rest = done.stdout.splitlines()
    assert run_id_of(first) is not None  # lc_run--<uuid>, printed before anything else
    shown = "\n".join(rest)
    assert f"{first} started" in shown and "Let me look that up." in shown
    assert '-> search {"query": "redis streams", "page": 2}' in shown and "completed" in shown
    stored = run_lcstream("result", first, env=env)
    assert stored.returncode == 0 and '"status": "completed"' in stored.stdout

    refused = run_lcstream("enqueue", "--model", "not a path", "hi", env=env)
    assert refused.returncode == 2 and "module:factory" in refused.stderr
    unknown = run_lcstream("cancel", "lc_run--nobody", env=env)
    assert unknown.returncode == 4
    ended = run_lcstream("cancel", first, env=env)
    assert ended.returncode == 1 and "ended completed" in ended.stderr


def test_jobs_refuse_a_cluster_url_with_a_clear_error() -> None:
    """arq's keys are not slotted: jobs need a single Redis, and say so instead of failing later."""
    env = lcstream_env("redis+cluster://127.0.0.1:1/0")
    worker = run_lcstream("worker", "--with-jobs", env=env)
    assert worker.returncode == 2
    assert "needs a single Redis" in worker.stderr
    enqueue = run_lcstream("enqueue", "hello", env=env)
    assert enqueue.returncode == 2
    assert "single Redis" in enqueue.stderr
