"""Read tokens for the gateway: short-lived, signed, scoped to one message or one run.

The application that creates a message (its web backend, the call that enqueues
a job) mints a token for the browser that will watch it; the gateway checks it.
A token is a JWT signed with HS256 by a key the two share
(`LCSTREAM_GATEWAY_TOKEN_KEYS`): the first key signs, every key verifies, so a
key is rotated by putting the new one first and dropping the old one once its
tokens expired. Its header names the key (`kid`: a hash of it, never the key).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import jwt

from lcstream.config import Settings, load_settings
from lcstream.streams.errors import TokenError
from lcstream.streams.keys import validate_message_id

ALGORITHM = "HS256"
MESSAGE_SCOPE = "message"
RUN_SCOPE = "run"  # a run and the messages it lists
OPERATOR_SCOPE = "operator"  # an operator's dashboard session (a cookie the gateway sets)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a valid token allows: `scope` (`message`, `run` or `operator`) and the message or run id."""

    scope: str
    subject: str
    expires_at: int


def key_id(key: str) -> str:
    """The `kid` of `key`: the first 16 hex digits of its SHA-256 (identifies it, reveals nothing)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def mint_read_token(
    message_id: str | None = None,
    *,
    run_id: str | None = None,
    ttl_s: int | None = None,
    key: str | None = None,
    settings: Settings | None = None,
) -> str:
    """A token that lets its holder read message M, or run R and its messages, on the gateway for
    `ttl_s` seconds. Name exactly one of `message_id` and `run_id`.

    The key and lifetime default to the settings (`LCSTREAM_GATEWAY_TOKEN_KEYS`'s first key,
    `LCSTREAM_GATEWAY_TOKEN_TTL_S`).

    Raises:
        TokenError: no key is configured.
    """
    if (message_id is None) == (run_id is None):
        raise TokenError("a read token names one message or one run: give one of the two")
    scope, subject = (MESSAGE_SCOPE, message_id) if message_id is not None else (RUN_SCOPE, run_id)
    assert subject is not None
    validate_message_id(subject)
    if key is None or ttl_s is None:
        settings = settings if settings is not None else load_settings()
        if key is None:
            if not settings.gateway_token_keys:
                raise TokenError("no LCSTREAM_GATEWAY_TOKEN_KEYS to sign read tokens with")
            key = settings.gateway_token_keys[0].get_secret_value()
        ttl_s = settings.gateway_token_ttl_s if ttl_s is None else ttl_s
    if ttl_s < 1:
        raise TokenError(f"a token lives at least 1 second, not {ttl_s}")
    return sign(scope, subject, key=key, ttl_s=ttl_s)


def sign(scope: str, subject: str, *, key: str, ttl_s: int) -> str:
    """A token of `scope` for `subject`, valid `ttl_s` seconds from now."""
    now = int(time.time())
    claims = {"scope": scope, "sub": subject, "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": key_id(key)})


def verify(token: str, keys: list[str]) -> Grant:
    """What `token` grants, if one of `keys` signed it and it has not expired.

    Raises:
        TokenError: malformed, tampered with, expired, or signed by none of `keys`.
    """
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = next((k for k in keys if key_id(k) == kid), None)
        if key is None:
            raise TokenError("token signed by an unknown key")
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], options={"require": ["exp", "iat", "sub", "scope"]}
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired") from None
    except jwt.InvalidTokenError:
        raise TokenError("invalid token: malformed, or not signed by this key") from None
    scope, subject = claims["scope"], claims["sub"]
    if scope not in (MESSAGE_SCOPE, RUN_SCOPE, OPERATOR_SCOPE) or not isinstance(subject, str):
        raise TokenError("invalid token: unknown scope")
    return Grant(scope, subject, int(claims["exp"]))
