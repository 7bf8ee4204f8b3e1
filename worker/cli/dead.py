"""`lcstream dead list|retry`: the operator's view of dead letters."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from lcstream.streams.errors import LcstreamError
from lcstream.worker.cli.common import (
    EXIT_FAILED,
    ConfigOption,
    RedisUrlOption,
    err,
    settings_or_exit,
    with_redis,
)
from lcstream.worker.deadletters import list_dead_letters, retry_dead_letter

dead_app = typer.Typer(
    no_args_is_help=True,
    help="Dead letters: messages failed for bad input, a silent producer, or too many deliveries.",
)


@dead_app.command("list")
def dead_list(
    count: Annotated[int, typer.Option(min=1, help="Newest entries to show.")] = 50,
    message_id: Annotated[str | None, typer.Option(help="Only this message's dead letters.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """List dead letters, newest first."""
    settings = settings_or_exit(config, redis_url=redis_url)
    letters = with_redis(
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
    settings = settings_or_exit(config, redis_url=redis_url)
    try:
        dispatch_id = with_redis(
            settings, lambda redis, keyspace: retry_dead_letter(redis, keyspace, message_id)
        )
    except LcstreamError as exc:
        err.print(f"[red]retry refused:[/red] {exc}")
        raise typer.Exit(EXIT_FAILED) from None
    typer.echo(f"{message_id} announced again as dispatch entry {dispatch_id}")
