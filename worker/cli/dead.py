"""`lcstream dead list|retry`: the operator's view of dead letters."""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from lcstream.config import load_settings
from lcstream.streams.cluster import RedisClient
from lcstream.streams.keys import Keyspace
from lcstream.worker.cli.common import (
    ConfigOption,
    JsonOption,
    RedisUrlOption,
    print_json,
    print_rows,
    reports_errors,
    with_redis,
)
from lcstream.worker.deadletters import (
    DeadLetter,
    delete_dead_letters,
    list_dead_letters,
    retry_dead_letter,
)

dead_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Dead letters: messages failed for bad input, a silent producer, or too many deliveries.",
)


@dead_app.command("list")
@reports_errors
def dead_list(
    count: Annotated[int, typer.Option(min=1, help="Newest entries to show.")] = 50,
    message_id: Annotated[str | None, typer.Option(help="Only this message's dead letters.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array, [] when there are none.")] = False,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """List dead letters, newest first."""
    settings = load_settings(config, redis_url=redis_url)

    async def work(redis: RedisClient, keyspace: Keyspace) -> tuple[list[DeadLetter], int]:
        letters = await list_dead_letters(redis, keyspace, count=count, message_id=message_id)
        return letters, await redis.xlen(keyspace.dead)

    letters, total = with_redis(settings, work)
    if as_json:
        print_json([dataclasses.asdict(letter) for letter in letters])
        return
    of_whom = f" of {message_id}" if message_id else ""
    title = f"{len(letters)} dead letters{of_whom} shown, newest first; {total} in {settings.prefix}:dead"
    rows = [
        (letter.message_id, letter.reason, letter.deliveries, _when(letter.time_ms), letter.error)
        for letter in letters
    ]
    print_rows(title, ("message", "reason", "deliveries", "when (UTC)", "error"), rows)


def _when(time_ms: int | None) -> str:
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S") if time_ms else "?"


@dead_app.command("retry")
@reports_errors
def dead_retry(
    message_id: Annotated[str, typer.Argument(help="The dead-lettered message to run again.")],
    as_json: JsonOption = False,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Clear a failed message's outcome and frames and announce it again (frames restart at seq 1)."""
    settings = load_settings(config, redis_url=redis_url)
    dispatch_id = with_redis(settings, lambda redis, keyspace: retry_dead_letter(redis, keyspace, message_id))
    if as_json:
        print_json({"message_id": message_id, "dispatch_id": dispatch_id})
    else:
        sys.stdout.write(f"{message_id} announced again as dispatch entry {dispatch_id}\n")


@dead_app.command("delete")
@reports_errors
def dead_delete(
    message_id: Annotated[str, typer.Argument(help="The message whose dead letters to remove.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Remove a message's dead letters (its keys expire with their retention; it is not run again)."""
    settings = load_settings(config, redis_url=redis_url)
    if not yes:
        typer.confirm(f"Delete the dead letters of {message_id}?", abort=True, err=True)  # stdout: the answer
    deleted = with_redis(settings, lambda redis, keyspace: delete_dead_letters(redis, keyspace, message_id))
    if as_json:
        print_json({"message_id": message_id, "deleted": deleted})
    else:
        sys.stdout.write(f"{deleted} dead letter{'' if deleted == 1 else 's'} of {message_id} deleted\n")
