"""The `lcstream` command line."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from redis.exceptions import AuthenticationError, NoPermissionError
from rich.console import Console

from lcstream.config import Settings, redact_url
from lcstream.streams.connection import CLUSTER_SCHEMES, connect_with
from lcstream.streams.errors import EventDecodeError, LcstreamError
from lcstream.streams.events import EventLimits, decode_event, encode_event
from lcstream.streams.langchain_internals import LangchainInternalsError
from lcstream.streams.ordering import EventOrder
from lcstream.streams.producer import publish_events
from lcstream.streams.reader import read_outcome
from lcstream.worker.cli import runtime
from lcstream.worker.cli.common import (
    EXIT_ABSENT,
    EXIT_FAILED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ConfigOption,
    RedisUrlOption,
    err,
    settings_or_exit,
    with_redis,
)
from lcstream.worker.cli.dead import dead_app
from lcstream.worker.cli.inspect import export, replay, stats, tail
from lcstream.worker.cli.jobs import cancel, enqueue
from lcstream.worker.cli.serve import serve
from lcstream.worker.engine.runner import Worker
from lcstream.worker.observability.health import probe, serving_probes
from lcstream.worker.observability.logs import configure_logging

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Carry LangChain chat-model streams through Redis Streams.",
)
app.add_typer(dead_app, name="dead")
for command in (tail, replay, export, stats, enqueue, cancel):
    app.command()(command)


@app.command()
def worker(
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
    burst: Annotated[bool, typer.Option(help="Exit once no message is open or waiting.")] = False,
    with_jobs: Annotated[bool, typer.Option(help="Also run the arq jobs in this process.")] = False,
) -> None:
    """Run a stream worker until SIGINT/SIGTERM (or until idle with --burst)."""
    settings = settings_or_exit(config, redis_url=redis_url)
    configure_logging(settings.log_level, settings.log_format)
    if with_jobs:
        from lcstream.worker.jobs.combined import run_with_jobs  # arq's worker only when asked for

        if settings.redis_url.partition("://")[0] in CLUSTER_SCHEMES:
            err.print("[red]--with-jobs needs a single Redis:[/red] arq's keys are not slotted for a cluster")
            raise typer.Exit(EXIT_USAGE)
        main = run_with_jobs(settings, burst=burst)
    else:
        main = _run_worker(settings, burst)
    runtime.tune_gc()
    try:
        runtime.run(main)
    except LangchainInternalsError as exc:
        err.print(f"[red]cannot run:[/red] {exc}")
        raise typer.Exit(EXIT_FAILED) from None
    except Exception as exc:
        # An unreachable Redis is retried for as long as it takes; a refusal can't be, so it ends the
        # worker with one line instead of a traceback per task.
        if (refusal := _refusal(exc)) is None:
            raise
        err.print(f"[red]Redis at {redact_url(settings.redis_url)} refused the worker:[/red] {refusal}")
        raise typer.Exit(EXIT_UNAVAILABLE) from None


def _refusal(exc: BaseException) -> BaseException | None:
    """The wrong password or missing ACL permission in `exc` (or in the exception group it is), if any."""
    if isinstance(exc, AuthenticationError | NoPermissionError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        return next((found for inner in exc.exceptions if (found := _refusal(inner)) is not None), None)
    return None


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


@app.command()
def health(
    config: ConfigOption = None,
    live: Annotated[bool, typer.Option("--live", help="Only ask whether the worker is alive.")] = False,
) -> None:
    """Exit 0 when the worker on LCSTREAM_METRICS_PORT is ready (or, with --live, alive); 1 if not."""
    settings = settings_or_exit(config)
    if not settings.metrics_port:
        typer.echo("LCSTREAM_METRICS_PORT is 0: the worker serves no health endpoint to ask", err=True)
        raise typer.Exit(2)
    ok, said = probe(settings.metrics_host, settings.metrics_port, live_only=live)
    typer.echo(said, err=not ok)
    raise typer.Exit(0 if ok else 1)


@app.command()
def demo(
    redis_url: RedisUrlOption = None,
    messages: Annotated[int, typer.Option(min=1, max=200, help="Messages to stream at once.")] = 6,
    pace_ms: Annotated[int, typer.Option(min=0, help="Delay between a model's tokens.")] = 40,
) -> None:
    """Stream several messages end to end on an embedded Redis (or --redis-url) and show them live."""
    from lcstream.worker.demo.embedded import embedded_redis
    from lcstream.worker.demo.run import run_demo

    configure_logging("warning", "console")
    console = Console()

    async def main(url: str) -> int:
        settings = settings_or_exit(
            None, redis_url=url, prefix="lcstream-demo", consumer="demo-worker", block_ms=100
        )
        return await run_demo(settings, messages=messages, pace_s=pace_ms / 1000, console=console)

    if redis_url:
        console.print(f"demo on {redact_url(redis_url)} (keys under lcstream-demo:)")
        code = asyncio.run(main(redis_url))
    else:
        with embedded_redis() as url:
            console.print(f"demo on an embedded in-process Redis at {url}")
            code = asyncio.run(main(url))
    raise typer.Exit(code)


@app.command()
def publish(
    file: Annotated[Path, typer.Argument(help="Events of one message, one JSON object per line.")],
    message_id: Annotated[
        str | None, typer.Option(help="Message id (default: the id of its message-start).")
    ] = None,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Publish one message's events from a JSONL file and announce it; print its message id."""
    settings = settings_or_exit(config, redis_url=redis_url)
    events = _read_events(file, settings)

    try:
        message = with_redis(
            settings,
            lambda redis, keyspace: publish_events(redis, events, message_id=message_id, keyspace=keyspace),
        )
    except (LcstreamError, ValueError) as exc:
        err.print(f"[red]publish failed:[/red] {exc}")
        raise typer.Exit(EXIT_FAILED) from None
    typer.echo(message)


def _read_events(file: Path, settings: Settings) -> list[dict[str, Any]]:
    """Parse and check every line the way a worker will, so bad input is refused before it is sent."""
    limits = EventLimits(settings.max_event_bytes, settings.max_json_depth)
    order = EventOrder(settings.max_events_per_message)
    events: list[dict[str, Any]] = []
    try:
        lines = file.read_bytes().splitlines()
    except OSError as exc:
        err.print(f"[red]cannot read {file}:[/red] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = decode_event({b"e": line}, limits)
            order.check(f"0-{len(events) + 1}", event)
        except EventDecodeError as exc:
            err.print(f"[red]{file}:{number}:[/red] {exc}")
            raise typer.Exit(EXIT_USAGE) from None
        events.append(orjson.loads(encode_event(event)[b"e"]))
    if not events:
        err.print(f"[red]{file} holds no events[/red]")
        raise typer.Exit(EXIT_USAGE)
    return events


@app.command()
def result(
    message_id: Annotated[str, typer.Argument(help="The message id.")],
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Print the stored outcome JSON of a message; exit 1 if it failed, 4 if it has none, 3 if Redis
    is unreachable or refuses."""
    settings = settings_or_exit(config, redis_url=redis_url)

    try:
        outcome = with_redis(settings, lambda redis, keyspace: read_outcome(redis, message_id, keyspace))
    except LcstreamError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_USAGE) from None
    raw = None if outcome is None else outcome.to_json()
    if raw is None:
        err.print(f"no outcome for {message_id} (not finished, expired, or never published)")
        raise typer.Exit(EXIT_ABSENT)
    sys.stdout.buffer.write(orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2) + b"\n")
    if orjson.loads(raw)["status"] != "completed":
        raise typer.Exit(EXIT_FAILED)


app.command("serve")(serve)
