"""`lcstream token`: mint a read token that opens one message, or one run, on the gateway."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from lcstream.config import load_settings
from lcstream.streams.tokens import mint_read_token, verify
from lcstream.worker.cli.common import ConfigOption, JsonOption, print_json, reports_errors


@reports_errors
def token(
    message_id: Annotated[str | None, typer.Argument(help="The message the token opens.")] = None,
    run_id: Annotated[
        str | None, typer.Option("--run", help="Open this run and its messages instead of one message.")
    ] = None,
    ttl_s: Annotated[
        int | None,
        typer.Option(min=1, max=7 * 86400, help="Lifetime, seconds (default: LCSTREAM_GATEWAY_TOKEN_TTL_S)."),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Print a read token for a message (or --run R), signed with LCSTREAM_GATEWAY_TOKEN_KEYS' first key;
    exit 2 without a key. Pass it as `Authorization: Bearer` or `?token=` (docs/security.md)."""
    settings = load_settings(config)
    minted = mint_read_token(message_id, run_id=run_id, ttl_s=ttl_s, settings=settings)
    if as_json:
        grant = verify(minted, [settings.gateway_token_keys[0].get_secret_value()])
        named = {"run_id": run_id} if run_id is not None else {"message_id": message_id}
        print_json({**named, "token": minted, "expires_at": grant.expires_at})
    else:
        sys.stdout.write(f"{minted}\n")
