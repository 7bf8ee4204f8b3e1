"""`lcstream worker --with-jobs`: a stream worker and an arq job worker in one process.

Both halves use one Redis connection pool and one shutdown. arq installs no
signal handlers of its own here: one handler stops both at once, and each
follows its own grace rule. The stream worker stops taking messages, gives
open ones `LCSTREAM_GRACE_PERIOD_S` and hands back the rest; arq stops taking
jobs, gives running ones `job_grace_s` (one second less) and then cancels
them, which ends their messages `cancelled` while the stream worker can still
commit them. The process exits 0 once both are done.
"""

from __future__ import annotations

import asyncio
import signal

from arq.worker import Worker as ArqWorker

from lcstream.config import Settings
from lcstream.streams.connection import connect_single_with
from lcstream.worker.engine.runner import Worker
from lcstream.worker.jobs.tasks import create_job_worker, job_grace_s
from lcstream.worker.observability.health import serving_probes
from lcstream.worker.observability.logs import route_stdlib_logger


async def run_with_jobs(settings: Settings, *, burst: bool = False) -> None:
    """Serve messages and jobs until SIGINT/SIGTERM; with `burst`, run the queued jobs, then the
    stream worker until idle."""
    route_stdlib_logger("arq", settings.log_level, settings.log_format)
    redis = connect_single_with(settings)  # arq needs a single Redis
    streams = Worker(redis, settings)
    jobs = create_job_worker(settings, redis, handle_signals=False, burst=burst)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    stopped: list[signal.Signals] = []

    def stop(sig: signal.Signals) -> None:
        streams.stop()
        if not stopped:  # arq's handlers start a new wait on every call: only the first counts
            stopped.append(sig)
            if job_grace_s(settings):
                jobs.handle_sig_wait_for_completion(sig)
            else:
                jobs.handle_sig(sig)

    for sig in signals:
        loop.add_signal_handler(sig, stop, sig)
    with serving_probes(settings, streams.health, streams.metrics.registry):
        try:
            if burst:
                # Jobs first: they don't wait for their messages' outcomes, and the stream worker's
                # burst then finds every message they announced.
                await run_jobs(jobs)
                await streams.run(until_idle=True)
            else:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(streams.run(), name="stream-worker")
                    tasks.create_task(run_jobs(jobs), name="job-worker")
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            try:
                await stop_jobs(jobs)
            finally:
                await redis.aclose()


async def run_jobs(jobs: ArqWorker) -> None:
    """Run arq's main loop until it ends (burst), or until a stop cancels it."""
    main = asyncio.get_running_loop().create_task(jobs.main(), name="arq-main")
    jobs.main_task = main  # what arq's stop handlers cancel
    try:
        await asyncio.wait({main})
    finally:
        if not main.done():  # we are cancelled: take arq's loop down with us
            main.cancel()
            await asyncio.wait({main})
    if not main.cancelled() and (error := main.exception()) is not None:
        raise error


async def stop_jobs(jobs: ArqWorker) -> None:
    """What `arq.worker.Worker.close()` does, without closing the shared pool (the caller does, with
    `aclose()`): cancel jobs still running, reap them, remove the health-check key."""
    for task in jobs.tasks.values():
        task.cancel()
    await asyncio.gather(*jobs.tasks.values(), return_exceptions=True)
    jobs.tasks.clear()
    await jobs.pool.delete(jobs.health_check_key)
