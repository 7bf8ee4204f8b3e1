"""Operator commands that look at messages: `tail`, `replay`, `export`, `stats`."""

from __future__ import annotations

import asyncio
import difflib
import sys
import time
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from lcstream.streams.cluster import RedisClient
from lcstream.streams.frames import Frame, FrameKind, Outcome
from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import read_outcome
from lcstream.streams.subscribe import subscribe
from lcstream.worker.cli.common import (
    EXIT_ABSENT,
    EXIT_FAILED,
    ConfigOption,
    RedisUrlOption,
    err,
    settings_or_exit,
    with_redis,
)
from lcstream.worker.engine.handler import MessageHandler
from lcstream.worker.jobs.reassembly import rebuild

MessageIdArgument = Annotated[str, typer.Argument(help="The message id.")]


class _TailPrinter:
    """Writes frames to the terminal as they come: reasoning dim, text plain, tool calls as calls."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._section: tuple[FrameKind, int] | None = None

    def show(self, frame: Frame) -> None:
        kind, data = frame.kind, frame.data
        if kind is FrameKind.START:
            self._console.print(f"[bold cyan]{data['message_id']}[/] started", highlight=False)
        elif kind in (FrameKind.TEXT, FrameKind.REASONING):
            self._enter((kind, 0), "[dim]thinking:[/] " if kind is FrameKind.REASONING else "")
            style = "dim italic" if kind is FrameKind.REASONING else ""
            self._console.print(data, end="", style=style, highlight=False, markup=False)
        elif kind is FrameKind.TOOL_CALL_CHUNK:
            index = data.get("index", 0)
            self._enter((kind, index), f"[blue]-> {data.get('name') or '?'}[/]")
            self._console.print(data.get("args") or "", end="", style="blue", highlight=False, markup=False)
        elif kind is FrameKind.OUTPUT:
            usage = data["data"].get("usage_metadata")
            self._end()
            self._console.print(f"[green]completed[/] usage={usage}", highlight=False)
        else:
            self._end()
            self._console.print(f"[red]failed ({data['code']})[/]: {data['message']}", highlight=False)

    def _enter(self, section: tuple[FrameKind, int], header: str) -> None:
        if section != self._section:
            self._end()
            if header:
                self._console.print(header, end=" " if section[0] is FrameKind.TOOL_CALL_CHUNK else "")
            self._section = section

    def _end(self) -> None:
        if self._section is not None:
            self._console.print()
            self._section = None


def tail(
    message_id: MessageIdArgument,
    after: Annotated[int, typer.Option(min=0, help="Start after this frame seq.")] = 0,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Follow a message live (text, reasoning, tool calls), then its outcome; exit 1 if it failed."""
    settings = settings_or_exit(config, redis_url=redis_url)
    printer = _TailPrinter(Console(highlight=False))

    async def work(redis: RedisClient, keyspace: Keyspace) -> Frame | None:
        last = None
        async for frame in subscribe(redis, message_id, after=after, keyspace=keyspace):
            printer.show(frame)
            last = frame
        return last

    last = with_redis(settings, work)
    if last is not None and last.kind is FrameKind.ERROR:
        raise typer.Exit(EXIT_FAILED)


def replay(
    message_id: MessageIdArgument,
    diff: Annotated[
        bool, typer.Option("--diff", help="Compare with the stored outcome; exit 1 if different.")
    ] = False,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Rebuild a message offline from its stored events; print its projections and AIMessage."""
    settings = settings_or_exit(config, redis_url=redis_url)

    async def work(
        redis: RedisClient, keyspace: Keyspace
    ) -> tuple[MessageHandler, list[Frame], Outcome | None]:
        keys = keyspace.message(message_id)
        handler, frames = rebuild(keys, await redis.xrange(keys.events), settings)
        return handler, frames, await read_outcome(redis, message_id, keyspace)

    handler, frames, stored = with_redis(settings, work)
    if handler.event_count == 0 and handler.outcome is None:
        err.print(f"no events stored for {message_id} (never published, or expired)")
        raise typer.Exit(EXIT_ABSENT)
    rebuilt = handler.outcome
    _print_projections(frames, rebuilt, handler.event_count)
    if not diff:
        return
    if stored is None:
        err.print(f"no stored outcome for {message_id} to compare with")
        raise typer.Exit(EXIT_ABSENT)
    if rebuilt is None or orjson.loads(rebuilt.to_json()) != orjson.loads(stored.to_json()):
        mine = _pretty(rebuilt.to_json() if rebuilt else b'{"status": "incomplete"}')
        theirs = _pretty(stored.to_json())
        sys.stdout.writelines(difflib.unified_diff(theirs, mine, "stored R(M)", "rebuilt"))
        raise typer.Exit(EXIT_FAILED)
    sys.stdout.write("rebuilt outcome equals the stored one\n")


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


def export(
    message_id: MessageIdArgument, config: ConfigOption = None, redis_url: RedisUrlOption = None
) -> None:
    """Write a message's stored events as JSONL to stdout (`lcstream publish` reads it back)."""
    settings = settings_or_exit(config, redis_url=redis_url)

    async def work(redis: RedisClient, keyspace: Keyspace) -> list[bytes]:
        entries = await redis.xrange(keyspace.message(message_id).events)
        return [fields.get(b"e", b"") for _, fields in entries]

    events = with_redis(settings, work)
    if not events:
        err.print(f"no events stored for {message_id} (never published, or expired)")
        raise typer.Exit(EXIT_ABSENT)
    sys.stdout.buffer.writelines(raw + b"\n" for raw in events)


def stats(
    sample_s: Annotated[
        float, typer.Option(min=0, help="Measure throughput over this long (0: skip).")
    ] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Consumer group, pending and lag per partition, consumers, dead letters, throughput."""
    settings = settings_or_exit(config, redis_url=redis_url)

    async def work(redis: RedisClient, keyspace: Keyspace) -> dict[str, Any]:
        first = await _group_rows(redis, keyspace, settings.group)
        started = time.monotonic()
        if sample_s:
            await asyncio.sleep(sample_s)  # the measuring window
            second = await _group_rows(redis, keyspace, settings.group)
            elapsed_s = time.monotonic() - started
            for before, after in zip(first, second, strict=True):
                after["claimed_per_s"] = round(
                    (after["entries_read"] - before["entries_read"]) / elapsed_s, 1
                )
            first = second
        return {
            "group": settings.group,
            "partitions": first,
            "open_messages": sum(p["pending"] for p in first),
            "lag": sum(p["lag"] or 0 for p in first),
            "dead_letters": await redis.xlen(keyspace.dead),
        }

    report = with_redis(settings, work)
    if as_json:
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
        return
    console = Console(highlight=False)
    table = Table(title=f"group {report['group']}: {report['open_messages']} open, lag {report['lag']}")
    for column in (
        "partition",
        "dispatch len",
        "pending",
        "lag",
        "claimed/s",
        "consumers (pending, idle ms)",
    ):
        table.add_column(column)
    for p in report["partitions"]:
        consumers = ", ".join(f"{c['name']} ({c['pending']}, {c['idle_ms']})" for c in p["consumers"])
        table.add_row(
            str(p["partition"]), str(p["length"]), str(p["pending"]), str(p["lag"]),
            str(p.get("claimed_per_s", "-")), consumers or "-",
        )  # fmt: skip
    console.print(table)
    console.print(f"dead letters: {report['dead_letters']}")


async def _group_rows(redis: RedisClient, keyspace: Keyspace, group: str) -> list[dict[str, Any]]:
    rows = []
    for k, dispatch in enumerate(keyspace.all_dispatch()):
        row: dict[str, Any] = {"partition": k, "length": await redis.xlen(dispatch), "pending": 0,
                               "lag": None, "entries_read": 0, "consumers": []}  # fmt: skip
        groups = await redis.xinfo_groups(dispatch) if row["length"] or await redis.exists(dispatch) else []
        mine = next((g for g in groups if g["name"].decode() == group), None)
        if mine is not None:
            row |= {
                "pending": mine["pending"],
                "lag": mine.get("lag"),
                "entries_read": mine.get("entries-read") or 0,
            }
            consumers = await redis.xinfo_consumers(dispatch, group)
            row["consumers"] = [
                {"name": c["name"].decode(), "pending": c["pending"], "idle_ms": c["idle"]} for c in consumers
            ]
        rows.append(row)
    return rows
