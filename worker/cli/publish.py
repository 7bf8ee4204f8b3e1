"""`lcstream publish`: one message's events from a JSONL file (or standard input) into Redis."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from lcstream.config import Settings, load_settings
from lcstream.streams.errors import EventDecodeError
from lcstream.streams.events import EventLimits, decode_event, encode_event
from lcstream.streams.ordering import EventOrder
from lcstream.streams.publish import publish_events
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


@reports_errors
def publish(
    file: Annotated[
        str, typer.Argument(help="Events of one message, one JSON object per line; - for stdin.")
    ],
    message_id: Annotated[
        str | None, typer.Option(help="Message id (default: the id of its message-start).")
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Publish one message's events and announce it; print its message id.

    The same events again (a retry) write nothing; a publish cut short is
    completed by running it again; other events under an id in use are refused
    (exit 5) and nothing is written.
    """
    settings = load_settings(config, redis_url=redis_url)
    events = _read_events(file, settings)
    message = with_redis(
        settings,
        lambda redis, keyspace: publish_events(redis, events, message_id=message_id, keyspace=keyspace),
    )
    if as_json:
        print_json({"message_id": message, "events": len(events)})
    else:
        sys.stdout.write(f"{message}\n")


def _read_events(source: str, settings: Settings) -> list[dict[str, Any]]:
    """Parse and check every line the way a worker will, so bad input is refused before it is sent."""
    limits = EventLimits(settings.max_event_bytes, settings.max_json_depth)
    order = EventOrder(settings.max_events_per_message)
    name = "stdin" if source == "-" else source
    try:
        raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        fail(ExitCode.USAGE, f"cannot read {name}: {exc}")
    events: list[dict[str, Any]] = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = decode_event({b"e": line}, limits)
            order.check(f"0-{len(events) + 1}", event)
        except EventDecodeError as exc:
            fail(ExitCode.USAGE, f"{name}:{number}: {exc}")
        events.append(orjson.loads(encode_event(event)[b"e"]))
    if not events:
        fail(ExitCode.USAGE, f"{name} holds no events")
    return events
