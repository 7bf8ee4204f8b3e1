"""The one settings model: environment variables `LCSTREAM_*` over a TOML file over defaults."""

from __future__ import annotations

import os
import re
import socket
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from lcstream.config.gateway import GatewaySettings

_config_file: ContextVar[Path | None] = ContextVar("lcstream_config_file", default=None)

_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_REDIS_SCHEMES = {"redis", "rediss", "unix", "redis+cluster", "rediss+cluster"}
MODEL_PATH_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*")


def check_model_path(path: str) -> str:
    """Return `path` if it looks like an import path `module:factory`, else raise ValueError."""
    if not MODEL_PATH_RE.fullmatch(path):
        raise ValueError(f"model {path!r} must be an import path 'module:factory'")
    return path


def redact_url(url: str) -> str:
    """Return `url` with its password replaced by `***`, for logs and errors.

    Fails safe: everything between the scheme and the last `@` is treated as
    credentials, so a malformed URL can't slip its password past a parser.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    userinfo, at, host_and_path = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    if not colon:
        return url  # a user name alone carries no secret
    return f"{scheme}{sep}{user}:***@{host_and_path}"


def _default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(GatewaySettings):
    """Everything a producer, worker or client of lcstream can be told.

    Every field is settable as `LCSTREAM_<FIELD>` or as `<field> = ...` in a
    TOML file passed with `--config` (or `LCSTREAM_CONFIG`); the environment
    wins over the file.
    """

    model_config = SettingsConfigDict(
        env_prefix="LCSTREAM_", extra="forbid", frozen=True, hide_input_in_errors=True
    )

    redis_url: str = Field(
        "redis://localhost:6379/0",
        description="Redis to use (redis://, rediss://, unix://; redis+cluster:// for a Redis Cluster).",
    )
    tls_ca_file: Path | None = Field(None, description="CA bundle to verify a rediss:// server against.")
    tls_cert_file: Path | None = Field(None, description="Client certificate for rediss:// (mutual TLS).")
    tls_key_file: Path | None = Field(None, description="Private key of the client certificate.")
    prefix: str = Field("lcstream", description="Key prefix P of every lcstream key and channel.")
    partitions: int = Field(
        1,
        ge=1,
        le=16384,
        description="Partitions N of the keyspace; never change it while messages are in flight.",
    )
    group: str = Field("workers", description="Consumer group the workers share.")
    consumer: str = Field(
        default_factory=_default_consumer,
        description="This worker's consumer name (default hostname-pid).",
    )
    max_open_messages: int = Field(
        1000, ge=1, description="Messages one worker holds open before it stops taking new ones."
    )
    block_ms: int = Field(
        1000, ge=1, description="Longest a blocking read waits; shorter than the socket timeout."
    )
    read_count: int = Field(
        5000,
        ge=1,
        le=100_000,
        description="Most events one read returns, shared among the open messages (at least one each).",
    )
    claim_count: int = Field(
        10, ge=1, le=10_000, description="Most new messages one worker claims in a round (one read of D(k))."
    )
    target_delay_ms: int = Field(
        50,
        ge=1,
        description="Delay (event produced to frames published) past which a worker takes no new messages.",
    )
    socket_timeout_s: float = Field(
        10.0, gt=0, description="Redis socket timeout; blocking reads stay below it."
    )
    retention_s: int = Field(
        86400, ge=1, description="How long a message's keys live after its outcome is written."
    )
    max_event_bytes: int = Field(1_048_576, ge=64, description="Largest event entry accepted.")
    max_events_per_message: int = Field(100_000, ge=1, description="Most events one message may have.")
    max_json_depth: int = Field(32, ge=2, le=512, description="Deepest JSON nesting accepted in an event.")
    idle_timeout_s: float = Field(300.0, gt=0, description="A producer silent this long fails its message.")
    max_open_s: float = Field(
        3600.0,
        gt=0,
        description="A message still open this long after its announcement fails (`max_open_time`).",
    )
    takeover_after_ms: int = Field(
        30_000, ge=100, description="A claim idle this long is taken over by a peer."
    )
    remove_idle_consumers_after_s: float = Field(
        600.0,
        gt=0,
        description="A consumer of the group idle this long that owns no entry is removed (a gone worker).",
    )
    figures_interval_s: float = Field(
        0.5,
        ge=0,
        description="How often a worker publishes its figures (P:workers) for the operations page; 0: never.",
    )
    max_deliveries: int = Field(5, ge=1, description="Deliveries of one message before it is dead-lettered.")
    grace_period_s: float = Field(
        30.0, ge=0, description="On SIGTERM, how long open messages may still finish."
    )
    model: str | None = Field(
        None, description="Chat model factory 'module:factory' that generation jobs run when they name none."
    )
    allowed_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Other factories generation jobs may name (comma-separated); any other is refused.",
    )
    allowed_graphs: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Graph factories 'module:factory' that graph-run jobs may name (comma-separated).",
    )
    job_timeout_s: float = Field(300.0, gt=0, description="Longest a job may run before it is cancelled.")
    job_max_tries: int = Field(3, ge=1, description="Runs of one job, counting arq's retries after a crash.")
    max_jobs: int = Field(10, ge=1, description="Jobs one arq worker runs at once.")
    metrics_host: str = Field(
        "127.0.0.1", description="Address the worker serves /metrics, /livez and /readyz on."
    )
    metrics_port: int = Field(
        0, ge=0, le=65535, description="Port of the worker's metrics and health endpoints; 0 turns them off."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="JSON lines when not on a terminal under auto."
    )

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        shown = redact_url(value)
        parts = urlsplit(value)
        if parts.scheme not in _REDIS_SCHEMES:
            raise ValueError(
                f"redis_url {shown!r} must start with redis://, rediss://, unix://, redis+cluster:// "
                "or rediss+cluster://"
            )
        try:
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError:
            raise ValueError(f"redis_url {shown!r} has an invalid port") from None
        if parts.scheme != "unix" and (not parts.hostname or "@" in parts.path + parts.query):
            raise ValueError(
                f"redis_url {shown!r} is malformed (percent-encode '/', '?', '#' and '@' in passwords)"
            )
        return value

    @field_validator("allowed_models", "allowed_graphs", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: comma-separated
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str | None) -> str | None:
        return None if value is None else check_model_path(value)

    @field_validator("allowed_models", "allowed_graphs")
    @classmethod
    def _check_models(cls, value: list[str]) -> list[str]:
        return [check_model_path(path) for path in value]

    @field_validator("prefix", "group", "consumer")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_RE.fullmatch(value):
            raise ValueError(f"{value!r} must be 1-64 characters from [A-Za-z0-9._-]")
        return value

    @model_validator(mode="after")
    def _check_tls_files(self) -> Settings:
        for name in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name} {path} is not a readable file")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self

    @model_validator(mode="after")
    def _check_block_below_socket_timeout(self) -> Settings:
        if self.block_ms >= self.socket_timeout_s * 1000:
            raise ValueError(
                f"block_ms ({self.block_ms}) must be below socket_timeout_s "
                f"({self.socket_timeout_s}) in milliseconds, or blocking reads time out"
            )
        return self

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (redact_url(value) if name == "redis_url" else value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = _config_file.get() or _env_config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def _env_config_file() -> Path | None:
    path = os.environ.get("LCSTREAM_CONFIG")
    return Path(path) if path else None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings: `overrides` over environment over `config_file` over defaults.

    Raises:
        FileNotFoundError: `config_file` does not exist.
        pydantic.ValidationError: a value is out of range or malformed.
    """
    config_file = config_file or _env_config_file()
    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"config file {config_file} does not exist")
    token = _config_file.set(config_file)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    finally:
        _config_file.reset(token)
