"""`lcstream enqueue` and `lcstream cancel`: generation jobs from the command line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from lcstream.config import load_settings
from lcstream.streams.cluster import single
from lcstream.streams.ending import MessageState
from lcstream.streams.jobqueue import cancel_generation, enqueue_generation
from lcstream.worker.cli.common import (
    ConfigOption,
    ExitCode,
    JsonOption,
    RedisUrlOption,
    fail,
    print_json,
    reports_errors,
    with_redis,
)
from lcstream.worker.cli.inspect import tail


@reports_errors
def enqueue(
    prompt: Annotated[str, typer.Argument(help="The prompt.")],
    model: Annotated[
        str | None, typer.Option(help="Chat model factory 'module:factory' (default: the worker's).")
    ] = None,
    message_id: Annotated[
        str | None, typer.Option(help="Message id (default: a new lc_run--<uuid>).")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Then follow the message live, like tail (it waits for the job).")
    ] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Queue a generation job; print its message id at once (with --follow, then tail it); exit 5 if the
    id is taken."""
    settings = load_settings(config, redis_url=redis_url)
    queued = with_redis(
        settings,
        lambda redis, keyspace: enqueue_generation(
            single(redis, "background jobs"), prompt, model=model, message_id=message_id, keyspace=keyspace
        ),
    )
    if as_json:
        print_json({"message_id": queued})
    else:
        sys.stdout.write(f"{queued}\n")
        sys.stdout.flush()
    if follow:
        tail(queued, wait=True, as_json=as_json, config=config, redis_url=redis_url)


@reports_errors
def cancel(
    message_id: Annotated[str, typer.Argument(help="The message id.")],
    wait_s: Annotated[
        float, typer.Option(min=0, help="How long the job may take to stop before M is ended from here.")
    ] = 5.0,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Stop the generation of a message: it ends failed with code `cancelled`; exit 1 if it had
    ended already, 4 if no such message is in flight."""
    settings = load_settings(config, redis_url=redis_url)
    outcome = with_redis(
        settings,
        lambda redis, keyspace: cancel_generation(
            single(redis, "background jobs"), message_id, keyspace=keyspace, wait_s=wait_s
        ),
    )
    if outcome.found is MessageState.ABSENT and outcome.state is MessageState.ABSENT:
        fail(ExitCode.ABSENT, f"no message {message_id} in flight (never enqueued, or expired)")
    if as_json:
        print_json({"message_id": message_id, "cancelled": outcome.cancelled, "state": str(outcome.state)})
    if not outcome.cancelled:
        fail(ExitCode.FAILED, f"{message_id} was not cancelled: it ended {outcome.state}")
    if not as_json:
        sys.stdout.write(f"{message_id} cancelled\n")
