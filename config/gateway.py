"""The settings of `lcstream serve` (the gateway): what it buffers and keeps, who may read, what it bounds.

`Settings` inherits them, so they are set like every other (`LCSTREAM_GATEWAY_*`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode

MIN_OPERATOR_TOKEN_CHARS = 16
MIN_TOKEN_KEY_BYTES = 32


def _split(value: Any) -> Any:
    if isinstance(value, str):  # from the environment: comma-separated
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class GatewaySettings(BaseSettings):
    """The gateway's part of the settings."""

    gateway_client_buffer: int = Field(
        1000,
        ge=1,
        description="Frames the gateway queues for one SSE client before cutting it off as too slow.",
    )
    gateway_recent_messages: int = Field(
        500, ge=1, description="Lifecycle notices the gateway keeps for GET /v1/messages."
    )
    gateway_auth: Literal["auto", "on", "off"] = Field(
        "auto",
        description="auto: required once a credential is set, and serve refuses a non-loopback address "
        "without one; on: always required; off: an open gateway, for a trusted network only.",
    )
    gateway_operator_token: SecretStr | None = Field(
        None, description="Bearer token of operators: the dashboard, every message, lists and metrics."
    )
    gateway_token_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Keys of per-message read tokens (comma-separated): the first signs, every one verifies.",
    )
    gateway_token_ttl_s: int = Field(
        900, ge=1, le=7 * 86400, description="Lifetime of a read token minted by `lcstream token`."
    )
    gateway_session_ttl_s: int = Field(
        43_200, ge=60, description="Lifetime of an operator's dashboard session cookie."
    )
    gateway_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins that may call the gateway from their pages (comma-separated).",
    )
    gateway_max_readers: int = Field(
        1000, ge=1, description="Messages the gateway streams at once; past it, 503 with Retry-After."
    )
    gateway_max_client_streams: int = Field(
        16, ge=1, description="Streams one client (address or token) may hold open at once; past it, 429."
    )
    gateway_wait_for_start_s: float = Field(
        5.0, ge=0, le=300, description="How long a stream of a message nothing is known of waits before 404."
    )
    gateway_sample_interval_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often the gateway samples Redis for the operations page.",
    )
    gateway_operations_window_s: int = Field(
        300, ge=10, le=3600, description="How far back the operations page's charts reach."
    )

    _split_keys = field_validator("gateway_token_keys", "gateway_cors_origins", mode="before")(_split)

    @field_validator("gateway_operator_token")
    @classmethod
    def _check_operator_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_OPERATOR_TOKEN_CHARS:
            raise ValueError(
                f"gateway_operator_token must have at least {MIN_OPERATOR_TOKEN_CHARS} characters"
            )
        return value

    @field_validator("gateway_token_keys")
    @classmethod
    def _check_token_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(len(key.get_secret_value().encode()) < MIN_TOKEN_KEY_BYTES for key in value):
            raise ValueError(f"every gateway_token_keys key needs at least {MIN_TOKEN_KEY_BYTES} bytes")
        return value

    @property
    def gateway_credentials_set(self) -> bool:
        """Whether an operator token or a token key is configured."""
        return self.gateway_operator_token is not None or bool(self.gateway_token_keys)
