"""`lcstream enqueue` and `lcstream cancel`: generation jobs from the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from lcstream.streams.cluster import single
from lcstream.streams.ending import MessageState
from lcstream.streams.errors import LcstreamError
from lcstream.streams.jobqueue import cancel_generation, enqueue_generation
from lcstream.worker.cli.common import (
    EXIT_ABSENT,
    EXIT_FAILED,
    EXIT_USAGE,
    ConfigOption,
    RedisUrlOption,
    err,
    settings_or_exit,
    with_redis,
)
from lcstream.worker.cli.inspect import tail


def enqueue(
    prompt: Annotated[str, typer.Argument(help="The prompt.")],
    model: Annotated[
        str | None, typer.Option(help="Chat model factory 'module:factory' (default: the worker's).")
    ] = None,
    message_id: Annotated[
        str | None, typer.Option(help="Message id (default: a new lc_run--<uuid>).")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Then follow the message live, like tail.")
    ] = False,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Queue a generation job; print its message id at once (with --follow, then tail it)."""
    settings = settings_or_exit(config, redis_url=redis_url)
    try:
        queued = with_redis(
            settings,
            lambda redis, keyspace: enqueue_generation(
                single(redis, "background jobs"),
                prompt,
                model=model,
                message_id=message_id,
                keyspace=keyspace,
            ),
        )
    except (LcstreamError, ValueError) as exc:
        err.print(f"[red]enqueue failed:[/red] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    typer.echo(queued)
    if follow:
        tail(queued, config=config, redis_url=redis_url)


def cancel(
    message_id: Annotated[str, typer.Argument(help="The message id.")],
    wait_s: Annotated[
        float, typer.Option(min=0, help="How long the job may take to stop before M is ended from here.")
    ] = 5.0,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Stop the generation of a message: it ends failed with code `cancelled`; exit 1 if it had
    ended already, 4 if no such message is in flight."""
    settings = settings_or_exit(config, redis_url=redis_url)
    try:
        outcome = with_redis(
            settings,
            lambda redis, keyspace: cancel_generation(
                single(redis, "background jobs"), message_id, keyspace=keyspace, wait_s=wait_s
            ),
        )
    except (LcstreamError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_USAGE) from None
    if outcome.found is MessageState.ABSENT and outcome.state is MessageState.ABSENT:
        err.print(f"no message {message_id} in flight (never enqueued, or expired)")
        raise typer.Exit(EXIT_ABSENT)
    if not outcome.cancelled:
        err.print(f"{message_id} was not cancelled: it ended {outcome.state}")
        raise typer.Exit(EXIT_FAILED)
    typer.echo(f"{message_id} cancelled")
