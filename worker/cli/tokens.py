"""`lcstream token`: mint a read token that opens one message on the gateway."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from lcstream.config import load_settings
from lcstream.streams.tokens import mint_read_token, verify
from lcstream.worker.cli.common import ConfigOption, JsonOption, print_json, reports_errors


@reports_errors
def token(
    message_id: Annotated[str, typer.Argument(help="The message the token opens.")],
    ttl_s: Annotated[
        int | None,
        typer.Option(min=1, max=7 * 86400, help="Lifetime, seconds (default: LCSTREAM_GATEWAY_TOKEN_TTL_S)."),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Print a read token for one message, signed with LCSTREAM_GATEWAY_TOKEN_KEYS' first key; exit 2
    without a key. Pass it as `Authorization: Bearer` or `?token=` (docs/security.md)."""
    settings = load_settings(config)
    minted = mint_read_token(message_id, ttl_s=ttl_s, settings=settings)
    if as_json:
        grant = verify(minted, [settings.gateway_token_keys[0].get_secret_value()])
        print_json({"message_id": message_id, "token": minted, "expires_at": grant.expires_at})
    else:
        sys.stdout.write(f"{minted}\n")
