"""What every `lcstream` command shares: options, exit codes, settings and a Redis session."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from redis.exceptions import AuthenticationError, NoPermissionError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rich.console import Console

from lcstream.config import Settings, load_settings, redact_url
from lcstream.streams.cluster import RedisClient
from lcstream.streams.connection import connect_with
from lcstream.streams.errors import RedisUnavailableError
from lcstream.streams.keys import Keyspace

err = Console(stderr=True, soft_wrap=True)  # one error, one line, whatever the width

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


def with_redis(settings: Settings, work: Callable[[RedisClient, Keyspace], Awaitable[T]]) -> T:
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


def settings_or_exit(config: Path | None, **overrides: Any) -> Settings:
    """The settings, or exit 2 with what is wrong (passwords redacted)."""
    try:
        return load_settings(config, **overrides)
    except (ValidationError, FileNotFoundError) as exc:
        err.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
