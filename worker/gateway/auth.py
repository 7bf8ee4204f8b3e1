"""Who may read what on the gateway: operators everything, a message's token that message only.

Credentials, checked in this order:

- `Authorization: Bearer <token>`: the operator token (compared in constant
  time), or a read token of a message or a run (`lcstream.streams.tokens`);
- `?token=<read token>` in the URL, for a browser's `EventSource`, which can
  send no header (the token is short-lived and names one message; responses
  carry `Referrer-Policy: no-referrer`, and the gateway logs no query string);
- the `lcstream_session` cookie an operator's dashboard gets from
  `POST /v1/session` (HttpOnly, SameSite=Strict), so the operator token itself
  never travels in a URL.

With no credential configured and `LCSTREAM_GATEWAY_AUTH` not `on` (a gateway on
loopback, for development), everything is open.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from lcstream.config import Settings
from lcstream.streams.errors import TokenError
from lcstream.streams.tokens import MESSAGE_SCOPE, OPERATOR_SCOPE, RUN_SCOPE, sign, verify
from lcstream.worker.gateway.errors import error

READ_SCOPES = (MESSAGE_SCOPE, RUN_SCOPE)  # what `Authorization: Bearer` and `?token=` may carry

SESSION_COOKIE = "lcstream_session"


@dataclass(frozen=True, slots=True)
class Access:
    """What a request may read: everything (an operator, or an open gateway), one message, or one run
    and its messages (`Gateway.authorize` checks that a message is the run's)."""

    operator: bool
    message_id: str | None = None
    run_id: str | None = None


OPEN = Access(operator=True)


class Authority:
    """The gateway's credentials, from the settings."""

    def __init__(self, settings: Settings, *, required: bool) -> None:
        self.required = required
        operator = settings.gateway_operator_token
        self._operator = operator.get_secret_value().encode() if operator is not None else None
        self._keys = [key.get_secret_value() for key in settings.gateway_token_keys]
        # Sessions are signed with a key only the operator token gives: holding a token key (as an app's
        # backend does, to mint read tokens) must not be enough to forge one; a new operator token ends them.
        self._session_keys = (
            [hashlib.sha256(b"lcstream-session\0" + self._operator).hexdigest()] if self._operator else []
        )
        self._session_ttl_s = settings.gateway_session_ttl_s

    def access(self, request: Request) -> Access | Response:
        """The request's access, or the 401 that refuses it."""
        if not self.required:
            return OPEN
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if header and scheme.lower() == "bearer" and presented:
            if self._operator is not None and hmac.compare_digest(presented.encode(), self._operator):
                return OPEN
            return self._from_token(presented, self._keys, READ_SCOPES)
        if token := request.query_params.get("token"):
            return self._from_token(token, self._keys, READ_SCOPES)
        if session := request.cookies.get(SESSION_COOKIE):
            return self._from_token(session, self._session_keys, (OPERATOR_SCOPE,))
        return error("unauthorized", "a credential is required: a bearer token, ?token= or a session")

    @staticmethod
    def refuse(what: str) -> Response:
        """The 403 of a credential that does not cover `what`."""
        return error("forbidden", f"this credential does not allow reading {what}")

    def operator_session(self, presented: str) -> str | None:
        """A session cookie's value for the operator token `presented`, or None if it is not that token."""
        if self._operator is None or not hmac.compare_digest(presented.encode(), self._operator):
            return None
        return sign(OPERATOR_SCOPE, "operator", key=self._session_keys[0], ttl_s=self._session_ttl_s)

    @property
    def session_ttl_s(self) -> int:
        """How long an operator session lasts."""
        return self._session_ttl_s

    def _from_token(self, token: str, keys: list[str], scopes: tuple[str, ...]) -> Access | Response:
        try:
            grant = verify(token, keys)
        except TokenError as exc:
            return error("invalid_token", str(exc))
        if grant.scope not in scopes:
            return error("invalid_token", f"a {grant.scope} token can't be used here")
        if grant.scope == OPERATOR_SCOPE:
            return OPEN
        if grant.scope == RUN_SCOPE:
            return Access(operator=False, run_id=grant.subject)
        return Access(operator=False, message_id=grant.subject)


def is_loopback(host: str) -> bool:
    """Whether `host` (what `serve --host` listens on) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def exposure_problem(settings: Settings, host: str) -> str | None:
    """Why the gateway must not listen on `host` with these settings, or None when it may."""
    if settings.gateway_auth == "off" or settings.gateway_credentials_set:
        return None
    if settings.gateway_auth == "on":
        return "LCSTREAM_GATEWAY_AUTH=on, yet no credential is set: set LCSTREAM_GATEWAY_OPERATOR_TOKEN " \
               "or LCSTREAM_GATEWAY_TOKEN_KEYS"  # fmt: skip
    if is_loopback(host):
        return None
    return (
        f"{host} is reachable beyond this machine, and no credential is set: set "
        "LCSTREAM_GATEWAY_OPERATOR_TOKEN and/or LCSTREAM_GATEWAY_TOKEN_KEYS, or LCSTREAM_GATEWAY_AUTH=off "
        "on a trusted network (docs/security.md)"
    )


def auth_required(settings: Settings) -> bool:
    """Whether the gateway demands credentials: `on`, or `auto` with a credential configured."""
    return settings.gateway_auth == "on" or (
        settings.gateway_auth == "auto" and settings.gateway_credentials_set
    )
