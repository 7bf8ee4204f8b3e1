"""Commands that look at one message: `tail`, `result`, `replay`, `export`."""

from __future__ import annotations

import difflib
import sys
from typing import Annotated, Any

import orjson
import typer

from lcstream.config import load_settings
from lcstream.streams.cluster import RedisClient
from lcstream.streams.frames import Frame, FrameKind, Outcome
from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import DEFAULT_WAIT_FOR_START_S, read_outcome
from lcstream.streams.subscribe import subscribe
from lcstream.worker.cli.common import (
    ConfigOption,
    ExitCode,
    JsonOption,
    RedisUrlOption,
    fail,
    out,
    print_json,
    reports_errors,
    with_redis,
)
from lcstream.worker.cli.printing import TailPrinter, compare_outcomes
from lcstream.worker.cli.runs import replay_run, tail_run
from lcstream.worker.engine.handler import MessageHandler
from lcstream.worker.jobs.reassembly import rebuild

MessageIdArgument = Annotated[str, typer.Argument(help="The message id.")]


@reports_errors
def tail(
    message_id: Annotated[str | None, typer.Argument(help="The message id (or --run R).")] = None,
    run_id: Annotated[
        str | None, typer.Option("--run", help="Follow every message of this run instead.")
    ] = None,
    after: Annotated[int, typer.Option(min=0, help="Start after this frame seq.")] = 0,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for a message that does not exist yet, as long as it takes.")
    ] = False,
    wait_s: Annotated[
        float, typer.Option(min=0, help="How long a message that does not exist yet is waited for.")
    ] = DEFAULT_WAIT_FOR_START_S,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON frame per line.")] = False,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Follow a message (or --run R: each message of a run) live: text, reasoning, tool calls, then its
    outcome; exit 1 if it failed, 4 if nothing of it appeared within --wait-s. Past the last frame of an
    ended message it ends at once."""
    settings = load_settings(config, redis_url=redis_url)
    if (message_id is None) == (run_id is None):
        fail(ExitCode.USAGE, "name a message, or a run with --run, not both")
    if run_id is not None:
        tail_run(settings, run_id, wait_for_start_s=None if wait else wait_s, as_json=as_json)
        return
    assert message_id is not None
    printer = TailPrinter(out)

    async def work(redis: RedisClient, keyspace: Keyspace) -> Frame | None:
        last = None
        wait_for_start_s = None if wait else wait_s
        async for frame in subscribe(
            redis, message_id, after=after, keyspace=keyspace, wait_for_start_s=wait_for_start_s
        ):
            if as_json:
                sys.stdout.buffer.write(frame.live_json() + b"\n")
                sys.stdout.flush()
            else:
                printer.show(frame)
            last = frame
        return last

    last = with_redis(settings, work)
    if last is not None and last.kind is FrameKind.ERROR:
        raise typer.Exit(ExitCode.FAILED)


@reports_errors
def result(
    message_id: MessageIdArgument,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Print the stored outcome JSON of a message; exit 1 if it failed, 4 if it has none."""
    settings = load_settings(config, redis_url=redis_url)
    outcome = with_redis(settings, lambda redis, keyspace: read_outcome(redis, message_id, keyspace))
    if outcome is None:
        fail(ExitCode.ABSENT, f"no outcome for {message_id} (not finished, expired, or never published)")
    sys.stdout.buffer.write(orjson.dumps(orjson.loads(outcome.to_json()), option=orjson.OPT_INDENT_2) + b"\n")
    if outcome.status != "completed":
        raise typer.Exit(ExitCode.FAILED)


@reports_errors
def replay(
    message_id: Annotated[str | None, typer.Argument(help="The message id (or --run R).")] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="Rebuild every message of this run.")] = None,
    diff: Annotated[
        bool, typer.Option("--diff", help="Compare with the stored outcome; exit 1 if different.")
    ] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Rebuild a message (or --run R: each message of a run) offline from its stored events; print its
    projections and AIMessage.

    With --diff, an outcome the worker gave for a reason outside the events
    (`idle_timeout`, `max_open_time`, `max_deliveries`, `wrong_type`,
    `invalid_dispatch`) is not a difference: the events alone can't make it.
    """
    settings = load_settings(config, redis_url=redis_url)
    if (message_id is None) == (run_id is None):
        fail(ExitCode.USAGE, "name a message, or a run with --run, not both")
    if run_id is not None:
        replay_run(settings, run_id, diff=diff, as_json=as_json)
        return
    assert message_id is not None

    async def work(
        redis: RedisClient, keyspace: Keyspace
    ) -> tuple[MessageHandler, list[Frame], Outcome | None]:
        keys = keyspace.message(message_id)
        handler, frames = rebuild(keys, await redis.xrange(keys.events), settings)
        return handler, frames, await read_outcome(redis, message_id, keyspace)

    handler, frames, stored = with_redis(settings, work)
    if handler.event_count == 0 and handler.outcome is None:
        fail(ExitCode.ABSENT, f"no events stored for {message_id} (never published, or expired)")
    rebuilt = handler.outcome
    verdict = compare_outcomes(rebuilt, stored) if diff else None
    if as_json:
        print_json(_replay_report(handler.event_count, frames, rebuilt, stored, verdict))
    else:
        _print_projections(frames, rebuilt, handler.event_count)
        if verdict == "different" and stored is not None:
            mine = _pretty(rebuilt.to_json() if rebuilt else b'{"status": "incomplete"}')
            sys.stdout.writelines(
                difflib.unified_diff(_pretty(stored.to_json()), mine, "stored R(M)", "rebuilt")
            )
        elif verdict is not None:
            sys.stdout.write(
                _VERDICTS[verdict].format(code=(stored.error or {}).get("code") if stored else "") + "\n"
            )
    if verdict == "absent":
        raise typer.Exit(ExitCode.ABSENT)
    if verdict == "different":
        raise typer.Exit(ExitCode.FAILED)


_VERDICTS = {
    "equal": "rebuilt outcome equals the stored one",
    "given up": "stored outcome failed {code}, for a reason outside the events: nothing to compare",
    "absent": "no stored outcome to compare with",
}


def _replay_report(
    events: int, frames: list[Frame], rebuilt: Outcome | None, stored: Outcome | None, verdict: str | None
) -> dict[str, Any]:
    return {
        "events": events,
        "frames": [orjson.loads(frame.live_json()) for frame in frames],
        "outcome": orjson.loads(rebuilt.to_json()) if rebuilt else None,
        "stored": orjson.loads(stored.to_json()) if stored else None,
        "comparison": verdict,
    }


def _pretty(raw: bytes) -> list[str]:
    return (
        orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        .decode()
        .splitlines(True)
    )


def _print_projections(frames: list[Frame], outcome: Outcome | None, events: int) -> None:
    """Plain text, exactly as the projections yielded it (no terminal markup or tab expansion)."""
    by_kind: dict[FrameKind, list[Any]] = {}
    for frame in frames:
        by_kind.setdefault(frame.kind, []).append(frame.data)
    lines = [
        f"{events} events, {len(frames)} frames",
        "reasoning: " + "".join(by_kind.get(FrameKind.REASONING, [])),
        "text: " + "".join(by_kind.get(FrameKind.TEXT, [])),
        f"tool call chunks: {len(by_kind.get(FrameKind.TOOL_CALL_CHUNK, []))}",
    ]
    if outcome is None:
        lines.append("incomplete: the message has not ended yet")
    else:
        lines.append(orjson.dumps(orjson.loads(outcome.to_json()), option=orjson.OPT_INDENT_2).decode())
    sys.stdout.write("\n".join(lines) + "\n")


@reports_errors
def export(
    message_id: MessageIdArgument, config: ConfigOption = None, redis_url: RedisUrlOption = None
) -> None:
    """Write a message's stored events as JSONL to stdout (`lcstream publish -` reads it back)."""
    settings = load_settings(config, redis_url=redis_url)

    async def work(redis: RedisClient, keyspace: Keyspace) -> list[bytes]:
        entries = await redis.xrange(keyspace.message(message_id).events)
        return [fields.get(b"e", b"") for _, fields in entries]

    events = with_redis(settings, work)
    if not events:
        fail(ExitCode.ABSENT, f"no events stored for {message_id} (never published, or expired)")
    sys.stdout.buffer.writelines(raw + b"\n" for raw in events)
