"""`lcstream enqueue` and `lcstream cancel`: generation jobs from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from lcstream.config import Settings, load_settings
from lcstream.streams.cluster import RedisClient, single
from lcstream.streams.ending import MessageState
from lcstream.streams.jobqueue import (
    cancel_generation,
    cancel_graph_run,
    enqueue_generation,
    enqueue_graph_run,
    is_graph_run,
)
from lcstream.streams.keys import Keyspace
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
    prompt: Annotated[
        str, typer.Argument(help="The prompt (with --graph: the graph's input, a JSON object).")
    ],
    model: Annotated[
        str | None, typer.Option(help="Chat model factory 'module:factory' (default: the worker's).")
    ] = None,
    graph: Annotated[
        str | None,
        typer.Option(help="Run this compiled graph factory 'module:factory' instead: print its run id."),
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
    """Queue a generation job, or with --graph a graph run; print its message (or run) id at once (with
    --follow, then tail it); exit 5 if the id is taken."""
    settings = load_settings(config, redis_url=redis_url)
    if graph is not None:
        _enqueue_graph(
            settings, graph, prompt, as_json=as_json, follow=follow, config=config, redis_url=redis_url
        )
        return
    queued = with_redis(
        settings,
        lambda redis, keyspace: enqueue_generation(
            single(redis, "background jobs"), prompt, model=model, message_id=message_id, keyspace=keyspace
        ),
    )
    _print_id("message_id", queued, as_json=as_json)
    if follow:
        tail(queued, wait=True, as_json=as_json, config=config, redis_url=redis_url)


def _print_id(name: str, value: str, *, as_json: bool) -> None:
    """What enqueue prints at once: the id alone, or `{name: id}` with --json (flushed: --follow goes on)."""
    if as_json:
        print_json({name: value})
    else:
        sys.stdout.write(f"{value}\n")
        sys.stdout.flush()


def _enqueue_graph(
    settings: Settings, graph: str, raw_input: str, *, as_json: bool, follow: bool, config: Path | None,
    redis_url: str | None,
) -> None:  # fmt: skip
    try:
        state = orjson.loads(raw_input)
    except orjson.JSONDecodeError as exc:
        fail(ExitCode.USAGE, f"a graph's input is a JSON object: {exc}")
    run_id = with_redis(
        settings,
        lambda redis, keyspace: enqueue_graph_run(
            single(redis, "background jobs"), graph, state, keyspace=keyspace
        ),
    )
    _print_id("run_id", run_id, as_json=as_json)
    if follow:
        tail(None, run_id=run_id, wait=True, as_json=as_json, config=config, redis_url=redis_url)


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
    """Stop the generation of a message (or a graph run): it ends failed with code `cancelled`; exit 1 if
    it had ended already, 4 if no such message or run is in flight."""
    settings = load_settings(config, redis_url=redis_url)

    async def work(redis: RedisClient, keyspace: Keyspace) -> tuple[str, bool, bool, str]:
        """(what it is, whether nothing of it was in flight, whether this cancelled it, its state)."""
        jobs = single(redis, "background jobs")
        if await is_graph_run(jobs, message_id, keyspace=keyspace):
            before, after = await cancel_graph_run(jobs, message_id, keyspace=keyspace, wait_s=wait_s)
            cancelled = before in (None, "running") and after == "failed"
            return "run", before is None and after is None, cancelled, str(after)
        outcome = await cancel_generation(jobs, message_id, keyspace=keyspace, wait_s=wait_s)
        absent = outcome.found is MessageState.ABSENT and outcome.state is MessageState.ABSENT
        return "message", absent, outcome.cancelled, str(outcome.state)

    kind, absent, cancelled, state = with_redis(settings, work)
    if absent:
        fail(ExitCode.ABSENT, f"no {kind} {message_id} in flight (never enqueued, or expired)")
    if as_json:
        print_json({f"{kind}_id": message_id, "cancelled": cancelled, "state": state})
    if not cancelled:
        fail(ExitCode.FAILED, f"{message_id} was not cancelled: it ended {state}")
    if not as_json:
        sys.stdout.write(f"{message_id} cancelled\n")
