"""Who may read what, over HTTP: operators everything, a read token its message only, nobody else anything."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from lcstream.config import Settings, load_settings
from lcstream.streams.publish import publish_events
from lcstream.streams.tokens import MESSAGE_SCOPE, OPERATOR_SCOPE, mint_read_token, sign
from lcstream.worker.engine.runner import Worker
from lcstream.worker.gateway.auth import SESSION_COOKIE, exposure_problem
from tests.conftest import RedisServer
from tests.worker.gateway.support import serve_in_process, text_events

OPERATOR = "operator-token-for-tests-0123456789"
KEY = "signing-key-for-tests-0123456789abcdef"
OLD_KEY = "the-previous-signing-key-0123456789abcdef"
A, B = "auth-a", "auth-b"


def secured(redis_url: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "consumer": "auth-test", "block_ms": 50, "socket_timeout_s": 5,
        "gateway_operator_token": OPERATOR, "gateway_token_keys": f"{KEY},{OLD_KEY}",
        "gateway_wait_for_start_s": 0.2,
    }  # fmt: skip
    return load_settings(redis_url=redis_url, **{**base, **overrides})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/json", response.text
    code: str = response.json()["error"]["code"]
    return code


@pytest.fixture
async def two_messages(real_redis: Redis, redis_server: RedisServer) -> None:
    """Messages A and B, both completed by a worker."""
    await publish_events(real_redis, text_events(A, ["secret ", "of ", "A"]))
    await publish_events(real_redis, text_events(B, ["secret ", "of ", "B"]))
    await Worker(real_redis, secured(redis_server.url)).run(until_idle=True)


MESSAGE_PATHS = ["/v1/messages/{m}", "/v1/messages/{m}/stream"]
OPERATOR_PATHS = ["/v1/messages", "/metrics"]


async def test_without_a_credential_only_health_and_the_empty_page_answer(
    redis_server: RedisServer, two_messages: None
) -> None:
    async with serve_in_process(secured(redis_server.url)) as client:
        for path in [*OPERATOR_PATHS, *(p.format(m=A) for p in MESSAGE_PATHS)]:
            response = await client.get(path)
            assert (response.status_code, error_code(response)) == (401, "unauthorized"), path
        assert (await client.get("/healthz")).status_code == 200
        page = await client.get("/")
        assert page.status_code == 200 and "secret" not in page.text  # the page holds no data
        assert page.headers["referrer-policy"] == "no-referrer"


async def test_the_operator_token_opens_everything(redis_server: RedisServer, two_messages: None) -> None:
    async with serve_in_process(secured(redis_server.url)) as client:
        for path in [*OPERATOR_PATHS, *(p.format(m=m) for p in MESSAGE_PATHS for m in (A, B))]:
            assert (await client.get(path, headers=bearer(OPERATOR))).status_code == 200, path
        wrong = await client.get("/v1/messages", headers=bearer(OPERATOR + "x"))
        assert (wrong.status_code, error_code(wrong)) == (401, "invalid_token")


async def test_a_read_token_opens_its_message_and_nothing_else(
    redis_server: RedisServer, two_messages: None
) -> None:
    token_a = mint_read_token(A, settings=secured(redis_server.url))
    async with serve_in_process(secured(redis_server.url)) as client:
        outcome = await client.get(f"/v1/messages/{A}", headers=bearer(token_a))
        assert outcome.status_code == 200 and "secret of A" in outcome.text
        stream = await client.get(f"/v1/messages/{A}/stream?token={token_a}")  # EventSource's way
        assert stream.status_code == 200 and '"kind":"output"' in stream.text
        for path in [*OPERATOR_PATHS, *(p.format(m=B) for p in MESSAGE_PATHS)]:
            for response in (
                await client.get(path, headers=bearer(token_a)),
                await client.get(f"{path}?token={token_a}"),
            ):
                assert (response.status_code, error_code(response)) == (403, "forbidden"), path
                assert "secret of B" not in response.text


async def test_tampered_expired_foreign_and_misused_tokens_are_refused(
    redis_server: RedisServer, two_messages: None
) -> None:
    settings = secured(redis_server.url)
    good = mint_read_token(A, settings=settings)
    header, claims, signature = good.split(".")
    forged_claims = sign(MESSAGE_SCOPE, B, key=KEY, ttl_s=60).split(".")[1]  # B's claims, A's signature
    refused = {
        "tampered signature": f"{header}.{claims}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}",
        "claims swapped": f"{header}.{forged_claims}.{signature}",
        "expired": sign(MESSAGE_SCOPE, A, key=KEY, ttl_s=-1),
        "unknown key": sign(MESSAGE_SCOPE, A, key="another-key-nobody-configured-0123456789", ttl_s=60),
        "a session as a read token": sign(OPERATOR_SCOPE, "operator", key=KEY, ttl_s=60),
        "not a token": "hello",
        "empty segments": "..",
    }
    async with serve_in_process(settings) as client:
        for what, token in refused.items():
            for response in (
                await client.get(f"/v1/messages/{A}", headers=bearer(token)),
                await client.get(f"/v1/messages/{A}/stream?token={token}"),
            ):
                assert (response.status_code, error_code(response)) == (401, "invalid_token"), what
        rotated = sign(MESSAGE_SCOPE, A, key=OLD_KEY, ttl_s=60)  # the second key still verifies
        assert (await client.get(f"/v1/messages/{A}", headers=bearer(rotated))).status_code == 200


async def test_an_operator_signs_in_for_a_session_cookie_and_out_again(
    redis_server: RedisServer, two_messages: None
) -> None:
    async with serve_in_process(secured(redis_server.url)) as client:
        refused = await client.post("/v1/session", headers=bearer("not-the-operator-token"))
        assert (refused.status_code, error_code(refused)) == (401, "unauthorized")
        assert SESSION_COOKIE not in client.cookies
        opened = await client.post("/v1/session", headers=bearer(OPERATOR))
        assert opened.status_code == 200
        set_cookie = opened.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie
        assert OPERATOR not in set_cookie
        assert (await client.get("/v1/messages")).status_code == 200  # the cookie is the credential
        assert (await client.get(f"/v1/messages/{B}/stream")).status_code == 200
        assert (await client.delete("/v1/session")).status_code == 204
        assert (await client.get("/v1/messages")).status_code == 401
        forged = sign(OPERATOR_SCOPE, "operator", key=KEY, ttl_s=60)  # a token key can't make a session
        client.cookies.set(SESSION_COOKIE, forged)
        refused = await client.get("/v1/messages")
        assert (refused.status_code, error_code(refused)) == (401, "invalid_token")


async def test_cors_answers_the_configured_origins_only(redis_server: RedisServer) -> None:
    settings = secured(redis_server.url, gateway_cors_origins="https://app.example")
    preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "Authorization"}
    async with serve_in_process(settings) as client:
        allowed = await client.options("/v1/messages", headers={"Origin": "https://app.example", **preflight})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        other = await client.options("/v1/messages", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in other.headers


async def test_an_open_gateway_needs_no_credential_on_loopback(
    redis_server: RedisServer, two_messages: None
) -> None:
    settings = load_settings(redis_url=redis_server.url)
    assert not settings.gateway_credentials_set
    async with serve_in_process(settings) as client:
        assert (await client.get(f"/v1/messages/{A}")).status_code == 200
        assert (await client.get("/v1/messages")).status_code == 200


@pytest.mark.parametrize(
    ("auth", "credential", "host", "refused"),
    [
        ("auto", False, "127.0.0.1", False),
        ("auto", False, "::1", False),
        ("auto", False, "localhost", False),
        ("auto", False, "0.0.0.0", True),  # noqa: S104 - the address under test
        ("auto", False, "gateway.internal", True),
        ("auto", True, "0.0.0.0", False),  # noqa: S104
        ("on", False, "127.0.0.1", True),
        ("off", False, "0.0.0.0", False),  # noqa: S104
    ],
)
def test_serve_refuses_to_listen_beyond_loopback_without_a_credential(
    auth: str, credential: bool, host: str, refused: bool
) -> None:
    overrides: dict[str, Any] = {"gateway_auth": auth}
    if credential:
        overrides["gateway_operator_token"] = OPERATOR
    problem = exposure_problem(load_settings(**overrides), host)
    assert (problem is not None) == refused
