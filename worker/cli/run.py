"""Commands that run something: `lcstream worker`, `health`, `demo`."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from lcstream.config import Settings, load_settings, redact_url
from lcstream.streams.connection import CLUSTER_SCHEMES, connect_with
from lcstream.worker.cli import runtime
from lcstream.worker.cli.common import (
    ConfigOption,
    ExitCode,
    JsonOption,
    RedisUrlOption,
    fail,
    out,
    print_json,
    reports_errors,
)
from lcstream.worker.engine.runner import Worker
from lcstream.worker.observability.health import probe, serving_probes
from lcstream.worker.observability.logs import configure_logging


@reports_errors
def worker(
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
    burst: Annotated[bool, typer.Option(help="Exit once no message is open or waiting.")] = False,
    with_jobs: Annotated[bool, typer.Option(help="Also run the arq jobs in this process.")] = False,
) -> None:
    """Run a stream worker until SIGINT/SIGTERM (or until idle with --burst).

    An unreachable Redis is retried for as long as it takes (a line per attempt);
    a refused password or ACL user ends it (exit 3).
    """
    settings = load_settings(config, redis_url=redis_url)
    configure_logging(settings.log_level, settings.log_format)
    if with_jobs:
        from lcstream.worker.jobs.combined import run_with_jobs  # arq's worker only when asked for

        if settings.redis_url.partition("://")[0] in CLUSTER_SCHEMES:
            fail(ExitCode.USAGE, "--with-jobs needs a single Redis: arq's keys are not slotted for a cluster")
        main = run_with_jobs(settings, burst=burst)
    else:
        main = _run_worker(settings, burst)
    runtime.tune_gc()
    runtime.run(main)


async def _run_worker(settings: Settings, burst: bool) -> None:
    redis = connect_with(settings)
    runner = Worker(redis, settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, runner.stop)
    try:
        with serving_probes(settings, runner.health, runner.metrics.registry):
            await runner.run(until_idle=burst)
    finally:
        await redis.aclose()


@reports_errors
def health(
    config: ConfigOption = None,
    live: Annotated[bool, typer.Option("--live", help="Only ask whether the worker is alive.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Exit 0 when the worker on LCSTREAM_METRICS_PORT is ready (or, with --live, alive); 1 if not."""
    settings = load_settings(config)
    if not settings.metrics_port:
        fail(ExitCode.USAGE, "LCSTREAM_METRICS_PORT is 0: the worker serves no health endpoint to ask")
    ok, said = probe(settings.metrics_host, settings.metrics_port, live_only=live)
    if as_json:
        print_json({"ok": ok, "said": said})
        raise typer.Exit(ExitCode.OK if ok else ExitCode.FAILED)
    if not ok:
        fail(ExitCode.FAILED, said)
    out.print(said, markup=False)


@reports_errors
def demo(
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url", help="Run on this Redis (keys under lcstream-demo:) instead of an embedded one."
        ),
    ] = None,
    messages: Annotated[int, typer.Option(min=1, max=200, help="Messages to stream at once.")] = 6,
    pace_ms: Annotated[int, typer.Option(min=0, help="Delay between a model's tokens.")] = 40,
) -> None:
    """Stream several messages end to end on an embedded Redis and show them live; exit 1 unless every
    outcome equals langchain-core's in-process one."""
    from lcstream.worker.demo.embedded import embedded_redis
    from lcstream.worker.demo.run import run_demo

    configure_logging("warning", "console")

    async def main(url: str) -> int:
        settings = load_settings(redis_url=url, prefix="lcstream-demo", consumer="demo-worker", block_ms=100)
        return await run_demo(settings, messages=messages, pace_s=pace_ms / 1000, console=out)

    if redis_url:
        out.print(f"demo on {redact_url(redis_url)} (keys under lcstream-demo:)", markup=False)
        code = asyncio.run(main(redis_url))
    else:
        with embedded_redis() as url:
            out.print(f"demo on an embedded in-process Redis at {url}", markup=False)
            code = asyncio.run(main(url))
    raise typer.Exit(code)
