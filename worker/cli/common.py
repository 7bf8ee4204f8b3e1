"""What every `lcstream` command shares: options, one table of exit codes, one way to report an error,
plain output when it is not a terminal, and a Redis session.

A command raises; `reports_errors` turns what it raised into one line on stderr
(`lcstream <command>: <what went wrong>`) and the exit code of `ExitCode`.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import orjson
import typer
from pydantic import ValidationError
from redis.exceptions import AuthenticationError, NoPermissionError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rich.console import Console
from rich.table import Table

from lcstream.config import Settings, redact_url
from lcstream.streams.cluster import RedisClient
from lcstream.streams.connection import connect_with
from lcstream.streams.errors import (
    EventDecodeError,
    InvalidMessageIdError,
    LcstreamError,
    MessageFailedError,
    MessageIdInUseError,
    MessageNotFoundError,
    PartitionCountError,
    RedisUnavailableError,
    TokenError,
)
from lcstream.streams.keys import Keyspace

err = Console(stderr=True, soft_wrap=True, highlight=False)  # one error, one line, whatever the width
out = Console(soft_wrap=True, highlight=False)  # colours on a terminal only, never wrapped

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (env LCSTREAM_* wins over it).")
]
RedisUrlOption = Annotated[
    str | None, typer.Option("--redis-url", help="Redis URL (default: LCSTREAM_REDIS_URL).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


class ExitCode(IntEnum):
    """What every `lcstream` command exits with."""

    OK = 0
    FAILED = 1  # the message (or job) failed, a comparison found a difference, a cancel came too late
    USAGE = 2  # bad arguments, settings or input; settings that disagree with the workers'
    UNAVAILABLE = 3  # Redis unreachable, or it refused (password, ACL)
    ABSENT = 4  # no such message, outcome, dead letter or job; or none appeared within the wait
    CONFLICT = 5  # the message id is taken: other events, an outcome or a job use it


EXIT_CODE_MEANINGS = {
    ExitCode.OK: "done",
    ExitCode.FAILED: "the message (or job) failed, a comparison found a difference, a cancel came late",
    ExitCode.USAGE: "bad arguments, settings or input (the line says which)",
    ExitCode.UNAVAILABLE: "Redis unreachable, or it refused the user or password",
    ExitCode.ABSENT: "no such message, outcome, dead letter or job, or none appeared within the wait",
    ExitCode.CONFLICT: "the message id is taken by other events, an outcome or a job",
}

P = ParamSpec("P")
T = TypeVar("T")


def fail(code: ExitCode, message: str) -> NoReturn:
    """Report `message` on one line of stderr and exit with `code` (from inside a command)."""
    raise CommandError(code, message)


class CommandError(Exception):
    """A command's own report: the message and its exit code."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def reports_errors(command: Callable[P, None]) -> Callable[P, None]:
    """Turn what `command` raises into one line on stderr and its exit code (nothing else escapes)."""
    name = command.__name__.replace("_", " ")  # dead_list: "dead list"

    @functools.wraps(command)
    def reporting(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            code, message = _classify(exc)
            err.print(f"lcstream {name}: {message}", markup=False)
            raise typer.Exit(code) from None

    return reporting


def _classify(exc: BaseException) -> tuple[ExitCode, str]:
    if isinstance(exc, BaseExceptionGroup):  # a task group's: report its first error
        return _classify(exc.exceptions[0])
    if isinstance(exc, CommandError):
        return exc.code, str(exc)
    if isinstance(exc, ValidationError | FileNotFoundError):
        return ExitCode.USAGE, f"invalid settings: {exc}".replace("\n", "; ")
    if isinstance(exc, InvalidMessageIdError | EventDecodeError | PartitionCountError | TokenError):
        return ExitCode.USAGE, str(exc)
    if isinstance(exc, MessageNotFoundError):
        return ExitCode.ABSENT, str(exc)
    if isinstance(exc, MessageIdInUseError):
        return ExitCode.CONFLICT, str(exc)
    if isinstance(exc, AuthenticationError | NoPermissionError):
        return ExitCode.UNAVAILABLE, f"Redis refused: {exc} (check the user and password)"
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | RedisUnavailableError | ConnectionError):
        return ExitCode.UNAVAILABLE, f"cannot reach Redis: {exc}"
    if isinstance(exc, MessageFailedError | LcstreamError):
        return ExitCode.FAILED, str(exc)
    if isinstance(exc, ValueError | TypeError):  # what a command's input made a library call refuse
        return ExitCode.USAGE, str(exc)
    raise exc


def print_json(value: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.buffer.write(orjson.dumps(value) + b"\n")


def print_rows(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A table on a terminal; elsewhere (a pipe, a file) the title, a header line and one tab-separated
    line per row, never wrapped."""
    if out.is_terminal:
        table = Table(title=title)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(str(cell) for cell in row))
        out.print(table)
        return
    lines = [title, "\t".join(columns), *("\t".join(str(cell) for cell in row) for row in rows)]
    sys.stdout.write("\n".join(lines) + "\n")


def with_redis(settings: Settings, work: Callable[[RedisClient, Keyspace], Awaitable[T]]) -> T:
    """Run `work` on a fresh client of the configured Redis, closed afterwards."""

    async def main() -> T:
        redis = connect_with(settings)
        try:
            return await work(redis, Keyspace.from_settings(settings))
        finally:
            await redis.aclose()

    url = redact_url(settings.redis_url)
    try:
        return asyncio.run(main())
    except (AuthenticationError, NoPermissionError) as exc:  # (a ConnectionError in redis-py)
        fail(ExitCode.UNAVAILABLE, f"Redis at {url} refused: {exc} (check the user and password)")
    except (RedisConnectionError, RedisTimeoutError, RedisUnavailableError) as exc:
        fail(ExitCode.UNAVAILABLE, f"cannot reach Redis at {url}: {exc}")
