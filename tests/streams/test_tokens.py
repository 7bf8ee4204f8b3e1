"""Read tokens: minted for one message, verified by any configured key, refused once expired or altered."""

from __future__ import annotations

import base64

import orjson
import pytest

from lcstream import TokenError, mint_read_token
from lcstream.config import load_settings
from lcstream.streams.errors import InvalidMessageIdError
from lcstream.streams.tokens import MESSAGE_SCOPE, key_id, sign, verify

KEY = "a-signing-key-of-at-least-32-bytes-0123"
NEXT_KEY = "the-next-signing-key-of-32-bytes-or-more"


def part_of(token: str, index: int) -> dict[str, object]:
    """The decoded header (0) or claims (1) of a JWT."""
    part = token.split(".")[index]
    decoded: dict[str, object] = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def test_a_token_names_its_message_and_expires_after_its_lifetime() -> None:
    token = mint_read_token("m-1", key=KEY, ttl_s=60)
    grant = verify(token, [KEY])
    claims = part_of(token, 1)
    assert (grant.scope, grant.subject) == (MESSAGE_SCOPE, "m-1")
    assert claims["exp"] == claims["iat"] + 60 == grant.expires_at  # type: ignore[operator]
    assert KEY not in token


def test_the_header_names_the_key_by_a_hash_never_the_key() -> None:
    header = part_of(mint_read_token("m-1", key=KEY, ttl_s=60), 0)
    assert header == {"alg": "HS256", "kid": key_id(KEY), "typ": "JWT"}
    assert len(key_id(KEY)) == 16 and key_id(KEY) != key_id(NEXT_KEY)


def test_rotation_every_configured_key_verifies_the_first_signs() -> None:
    settings = load_settings(gateway_token_keys=f"{NEXT_KEY},{KEY}")
    old = sign(MESSAGE_SCOPE, "m-1", key=KEY, ttl_s=60)
    new = mint_read_token("m-1", settings=settings)
    assert part_of(new, 0)["kid"] == key_id(NEXT_KEY)
    keys = [k.get_secret_value() for k in settings.gateway_token_keys]
    assert verify(old, keys).subject == verify(new, keys).subject == "m-1"
    with pytest.raises(TokenError, match="unknown key"):
        verify(old, [NEXT_KEY])  # the old key dropped: its tokens stop working


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (sign(MESSAGE_SCOPE, "m-1", key=KEY, ttl_s=-1), "expired"),
        (sign("admin", "m-1", key=KEY, ttl_s=86_400), "unknown scope"),  # made at collection: lasts
        ("not.a.token", "invalid token"),
        ("", "invalid token"),
    ],
)
def test_expired_foreign_and_malformed_tokens_are_refused(token: str, reason: str) -> None:
    with pytest.raises(TokenError, match=reason):
        verify(token, [KEY])


def test_a_changed_claim_breaks_the_signature() -> None:
    header, _, signature = mint_read_token("m-1", key=KEY, ttl_s=60).split(".")
    other_claims = mint_read_token("m-2", key=KEY, ttl_s=60).split(".")[1]
    with pytest.raises(TokenError, match="invalid token"):
        verify(f"{header}.{other_claims}.{signature}", [KEY])


def test_minting_needs_a_key_a_valid_id_and_a_positive_lifetime() -> None:
    with pytest.raises(TokenError, match="LCSTREAM_GATEWAY_TOKEN_KEYS"):
        mint_read_token("m-1", settings=load_settings())
    with pytest.raises(InvalidMessageIdError):
        mint_read_token("bad id", key=KEY, ttl_s=60)
    with pytest.raises(TokenError, match="at least 1 second"):
        mint_read_token("m-1", key=KEY, ttl_s=0)


def test_short_keys_and_operator_tokens_are_refused_by_the_settings() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        load_settings(gateway_token_keys="short")  # noqa: S106 - too short on purpose
    with pytest.raises(ValueError, match="16 characters"):
        load_settings(gateway_operator_token="short")  # noqa: S106 - too short on purpose


def test_a_run_token_names_the_run_and_a_token_names_exactly_one_thing() -> None:
    grant = verify(mint_read_token(run_id="run-1", key=KEY, ttl_s=60), [KEY])
    assert (grant.scope, grant.subject) == ("run", "run-1")
    for both_or_neither in ({"message_id": "m-1", "run_id": "run-1"}, {}):
        with pytest.raises(TokenError, match="one message or one run"):
            mint_read_token(**both_or_neither, key=KEY, ttl_s=60)  # type: ignore[arg-type]
