"""The `lcstream` command line."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, NoPermissionError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rich.console import Console
from rich.table import Table

from config import Settings, load_settings, redact_url
from streams.connection import connect_with
from streams.errors import EventDecodeError, LcstreamError, RedisUnavailableError
from streams.events import EventLimits, decode_event, encode_event
from streams.keys import Keyspace
from streams.ordering import EventOrder
from streams.producer import publish_events
from streams.reader import read_outcome
from worker.deadletters import list_dead_letters, retry_dead_letter
from worker.logs import configure_logging
from worker.runner import Worker

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Carry LangChain chat-model streams through Redis Streams.",
)
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (env LCSTREAM_* wins over it).")
]
RedisUrlOption = Annotated[
    str | None, typer.Option("--redis-url", help="Redis URL (default: LCSTREAM_REDIS_URL).")
]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_ABSENT = 4

T = TypeVar("T")


def _with_redis(settings: Settings, work: Callable[[Redis, Keyspace], Awaitable[T]]) -> T:
    """Run `work` on a fresh client of the configured Redis; a connection failure exits 3."""

    async def main() -> T:
        redis = connect_with(settings)
        try:
            return await work(redis, Keyspace(settings.prefix, settings.partitions))
        finally:
            await redis.aclose()

    try:
        return asyncio.run(main())
    except (AuthenticationError, NoPermissionError) as exc:
        err.print(f"[red]Redis at {redact_url(settings.redis_url)} refused:[/red] {exc} (check the ACL user)")
        raise typer.Exit(EXIT_UNAVAILABLE) from None
    except (RedisConnectionError, RedisTimeoutError, RedisUnavailableError) as exc:
        err.print(f"[red]cannot reach Redis at {redact_url(settings.redis_url)}:[/red] {exc}")
        raise typer.Exit(EXIT_UNAVAILABLE) from None


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **overrides)
    except (ValidationError, FileNotFoundError) as exc:
        err.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(EXIT_USAGE) from None


@app.command()
def worker(
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
    burst: Annotated[bool, typer.Option(help="Exit once no message is open or waiting.")] = False,
) -> None:
    """Run a stream worker until SIGINT/SIGTERM (or until idle with --burst)."""
    settings = _settings(config, redis_url=redis_url)
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(_run_worker(settings, burst))


async def _run_worker(settings: Settings, burst: bool) -> None:
    redis = connect_with(settings)
    runner = Worker(redis, settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, runner.stop)
    try:
        await runner.run(until_idle=burst)
    finally:
        await redis.aclose()


@app.command()
def demo(
    redis_url: RedisUrlOption = None,
    messages: Annotated[int, typer.Option(min=1, max=200, help="Messages to stream at once.")] = 6,
    pace_ms: Annotated[int, typer.Option(min=0, help="Delay between a model's tokens.")] = 40,
) -> None:
    """Stream several messages end to end on an embedded Redis (or --redis-url) and show them live."""
    from worker.demo import run_demo
    from worker.embedded import embedded_redis

    configure_logging("warning", "console")
    console = Console()

    async def main(url: str) -> int:
        settings = _settings(
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
    settings = _settings(config, redis_url=redis_url)
    events = _read_events(file, settings)

    try:
        message = _with_redis(
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
    settings = _settings(config, redis_url=redis_url)

    try:
        outcome = _with_redis(settings, lambda redis, keyspace: read_outcome(redis, message_id, keyspace))
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


dead_app = typer.Typer(
    no_args_is_help=True,
    help="Dead letters: messages failed for bad input, a silent producer, or too many deliveries.",
)
app.add_typer(dead_app, name="dead")


@dead_app.command("list")
def dead_list(
    count: Annotated[int, typer.Option(min=1, help="Newest entries to show.")] = 50,
    message_id: Annotated[str | None, typer.Option(help="Only this message's dead letters.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """List dead letters, newest first."""
    settings = _settings(config, redis_url=redis_url)
    letters = _with_redis(
        settings,
        lambda redis, keyspace: list_dead_letters(redis, keyspace, count=count, message_id=message_id),
    )
    if as_json:
        for letter in letters:
            typer.echo(orjson.dumps(dataclasses.asdict(letter)).decode())
        return
    table = Table(title=f"{len(letters)} dead letters (newest first)")
    for column in ("message", "reason", "deliveries", "when (UTC)", "error"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        when = (
            datetime.fromtimestamp(letter.time_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
            if letter.time_ms
            else "?"
        )
        table.add_row(letter.message_id, letter.reason, str(letter.deliveries), when, letter.error)
    Console().print(table)


@dead_app.command("retry")
def dead_retry(
    message_id: Annotated[str, typer.Argument(help="The dead-lettered message to run again.")],
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Clear a failed message's outcome and frames and announce it again (frames restart at seq 1)."""
    settings = _settings(config, redis_url=redis_url)
    try:
        dispatch_id = _with_redis(
            settings, lambda redis, keyspace: retry_dead_letter(redis, keyspace, message_id)
        )
    except LcstreamError as exc:
        err.print(f"[red]retry refused:[/red] {exc}")
        raise typer.Exit(EXIT_FAILED) from None
    typer.echo(f"{message_id} announced again as dispatch entry {dispatch_id}")
