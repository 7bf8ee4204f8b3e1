"""Fuzzing every endpoint's path, query and headers: the gateway answers only documented statuses, every
error as `{"error": {"code", "message"}}` JSON of `errors.CODES`, never a 500 or a library's own text.

A secured gateway (with CORS) and an open one run under uvicorn on one event loop in a thread of their
own, started once; hypothesis sends one request per example, so a failure shrinks to one request."""

from __future__ import annotations

import asyncio
import base64
import logging
import operator
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, quote_plus, unquote

import httpx
import jwt
import orjson
import pytest
import structlog
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from lcstream.config import load_settings
from lcstream.streams.publish import publish_events
from lcstream.streams.tokens import MESSAGE_SCOPE, OPERATOR_SCOPE, key_id, sign
from lcstream.worker.engine.runner import Worker
from lcstream.worker.gateway import create_app
from lcstream.worker.gateway.auth import SESSION_COOKIE
from lcstream.worker.gateway.errors import CODES
from tests.conftest import RedisServer, free_port
from tests.worker.gateway.support import text_events

OPERATOR, KEY = "operator-token-for-fuzzing-0123", "signing-key-for-fuzzing-0123456789abcdef"
ORIGIN = "https://app.example"  # the secured gateway's CORS origin
COMPLETED = ["fuzz-a", "fuzz.b:2_X", "m" * 256]  # their streams end by themselves
WAITING = "fuzz-waiting"  # events, no worker: 202 on GET; its stream would wait, so it is never streamed
ALLOWED = {200, 202, 204, *CODES.values()}
INTERNAL = re.compile(r'Traceback|set_int_max_str_digits|object at 0x|File "|\b\w*(?:Error|Exception)\b')
READ_TIMEOUT_S = 5.0


class Gateways:
    """The secured and the open gateway over the Redis at `url`, seeded with messages first."""

    def __init__(self, url: str) -> None:
        common: dict[str, Any] = {"redis_url": url, "socket_timeout_s": 5, "gateway_wait_for_start_s": 0}
        secured = load_settings(
            **common, gateway_operator_token=OPERATOR, gateway_token_keys=KEY, gateway_cors_origins=ORIGIN
        )
        self.servers = {
            name: uvicorn.Server(uvicorn.Config(create_app(s), port=free_port(), log_config=None))
            for name, s in {"secured": secured, "open": load_settings(**common)}.items()
        }
        self._url, self.failure = url, cast(BaseException | None, None)
        self._thread = threading.Thread(target=self._run, name="fuzzed-gateways", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start() and stop()
            self.failure = exc

    async def _main(self) -> None:
        async with Redis.from_url(self._url) as redis:
            await redis.flushdb()
            for message_id in COMPLETED:
                await publish_events(redis, text_events(message_id, ["fuzzed ", "text"]))
            worker = load_settings(redis_url=self._url, consumer="fuzz", block_ms=50, socket_timeout_s=5)
            await Worker(redis, worker).run(until_idle=True)
            await publish_events(redis, text_events(WAITING, ["never ", "done"]))
        await asyncio.gather(*(server.serve() for server in self.servers.values()))

    def start(self) -> dict[str, httpx.Client]:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not all(server.started for server in self.servers.values()):
            assert self._thread.is_alive() and time.monotonic() < deadline, f"no start: {self.failure!r}"
            time.sleep(0.02)
        return {
            name: httpx.Client(base_url=f"http://127.0.0.1:{server.config.port}", timeout=READ_TIMEOUT_S)
            for name, server in self.servers.items()
        }

    def stop(self) -> None:
        for server in self.servers.values():
            server.should_exit = True
        self._thread.join(20)
        assert not self._thread.is_alive() and self.failure is None, f"unclean stop: {self.failure!r}"


@pytest.fixture(scope="module")
def clients(redis_server: RedisServer) -> Iterator[dict[str, httpx.Client]]:
    gateways = Gateways(redis_server.url)
    started = gateways.start()
    yield started
    for client in started.values():
        client.close()
    gateways.stop()


def odd_claims(scope: object, sub: object, exp: object) -> str:
    """A token whose signature is good (the configured key), with whatever claims."""
    claims = {"scope": scope, "sub": sub, "iat": int(time.time()), "exp": exp}
    return jwt.encode(claims, KEY, algorithm="HS256", headers={"kid": key_id(KEY)})


ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"
ODD = [
    "..", ".", "%", "%00", "\x00", "a/b", "/", "-1", "../app.py", "index.html", " ",
    "\u0663", "\ufb01", "\u202e", "\ufffd",
]  # fmt: skip
NUMBERS = [  # digits of other scripts (Arabic-Indic, fullwidth, superscript); 4400 digits: int() refuses
    "", " 1", "+1", "0x1", "1e3", "-0", "\u0661\u0662", "\uff11\uff12", "\u00b2",
    "9" * 18, "9" * 19, "9" * 4400,
]  # fmt: skip
odd_text = st.text(max_size=40)
random_ids = st.one_of(
    odd_text, st.sampled_from(ODD), st.text(ID_CHARS, min_size=1, max_size=20),
    st.text(ID_CHARS, min_size=250, max_size=1000),
)  # fmt: skip
numbers = st.one_of(
    st.integers(0, 12).map(str), st.integers(-(10**40), 10**40).map(str), st.floats().map(str),
    st.sampled_from(NUMBERS), odd_text,
)  # fmt: skip
read_tokens = [sign(MESSAGE_SCOPE, m, key=KEY, ttl_s=3600) for m in [*COMPLETED, "elsewhere"]]
session = sign(OPERATOR_SCOPE, "operator", key=KEY, ttl_s=3600)
JWT_HEADERS = [{"alg": "HS256", "kid": key_id(KEY)}, {"alg": "none", "kid": key_id(KEY)}, {"kid": [1]}, []]
jwt_headers = st.one_of(
    st.sampled_from(JWT_HEADERS).map(orjson.dumps), st.binary(max_size=30),
    st.sampled_from([b"{", b'{"kid":' + b"9" * 5000 + b"}"]),
)  # fmt: skip
tokens = st.one_of(
    st.sampled_from([*read_tokens, session, sign(MESSAGE_SCOPE, "fuzz-a", key=KEY, ttl_s=-5), "..", ""]),
    st.tuples(jwt_headers, st.binary(max_size=40), st.binary(max_size=40)).map(
        lambda parts: ".".join(base64.urlsafe_b64encode(part).rstrip(b"=").decode() for part in parts)
    ),
    st.builds(
        odd_claims,
        st.sampled_from([MESSAGE_SCOPE, OPERATOR_SCOPE, "", None, [MESSAGE_SCOPE]]),
        st.sampled_from(COMPLETED) | random_ids | st.integers(),
        st.sampled_from([10**10, -1, 10**30, 1e300, "99999999999", float("inf"), float("nan"), None]),
    ),
    odd_text,
)
flags = st.sampled_from(["1", "0", "true", "FALSE", "", "İ"]) | odd_text
QUERY: dict[str, st.SearchStrategy[str]] = {"after": numbers, "snapshot": flags, "token": tokens}
SANE = {"after": st.integers(0, 5).map(str), "snapshot": st.sampled_from(["1", "0", "true", "false"])}
good_authorization = st.sampled_from([None, f"Bearer {OPERATOR}", *(f"Bearer {t}" for t in read_tokens)])
odd_authorization = st.builds(
    operator.add, st.sampled_from(["Bearer ", "bearer ", "Basic ", "Bearer", "", "Bearer  "]), tokens
)
METHODS = ["GET"] * 6 + ["POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"]
PATHS = ["/v1/messages/{id}", "/v1/messages/{id}/stream"] * 3 + [
    "/v1/runs", "/v1/runs/{id}", "/v1/runs/{id}/stream",
    "/v1/messages", "/v1/session", "/metrics", "/healthz", "/", "/static/{id}", "/{id}",
    "/v1/messages/{id}/{id}", "/v1/messages/{id}/stream/", "/healthz/",
]  # fmt: skip
PREFLIGHT = {
    "origin": st.sampled_from([ORIGIN, "https://elsewhere.example", "null"]) | odd_text,
    "access-control-request-method": st.sampled_from(METHODS) | odd_text,
    "access-control-request-headers": st.sampled_from(["authorization", "Last-Event-ID, X-Other"]) | odd_text,
}


def encode(text: str, how: str) -> str:
    """`text` percent-encoded in one of several valid ways."""
    if how == "every-byte":  # even '.', which the server decodes back: a path segment `..` reaches the app
        return "".join(f"%{byte:02X}" for byte in text.encode())
    if how == "twice":
        return quote(quote(text, safe=""), safe="")
    return {"slashes": quote(text, safe="/"), "plus": quote_plus(text)}.get(how, quote(text, safe=""))


def header(text: str) -> bytes:
    """`text` as a valid header value: UTF-8, no control characters, no outer blanks."""
    return bytes(b for b in text.encode() if b >= 0x20 and b != 0x7F).strip(b" \t")


@dataclass(frozen=True)
class Probe:
    gateway: str
    method: str
    target: str
    headers: dict[bytes, bytes]


@st.composite
def probes(draw: st.DrawFn) -> Probe:
    path = draw(st.sampled_from(PATHS))
    known = st.sampled_from(COMPLETED if "/stream" in path else [*COMPLETED, WAITING])
    sane = draw(st.booleans())  # half the probes well-formed, to reach what lies past the checks
    encodings = st.sampled_from(["plain", "slashes", "plus", "every-byte", "twice"])
    target = path.replace("{id}", encode(draw(known if sane else known | random_ids), draw(encodings)))
    parameters, names = (
        (SANE, st.sampled_from(list(SANE))) if sane else (QUERY, st.sampled_from(list(QUERY)) | odd_text)
    )
    query = []
    for name in draw(st.lists(names, max_size=3, unique=sane)):
        how = draw(encodings)
        query.append(f"{encode(name, how)}={encode(draw(parameters.get(name, odd_text)), how)}")
    target += "?" + "&".join(query) if query else ""
    headers: dict[bytes, bytes] = {}
    authorization = draw(good_authorization if sane else good_authorization | odd_authorization)
    if authorization is not None:
        headers[b"authorization"] = header(authorization)
    if draw(st.integers(0, 3)) == 3:
        headers[b"last-event-id"] = header(draw(parameters["after"]))
    if draw(st.integers(0, 3)) == 3:
        headers[b"cookie"] = header(f"{SESSION_COOKIE}={draw(st.just(session) | tokens)}")
    for name in draw(st.lists(st.sampled_from(list(PREFLIGHT)), unique=True)):
        headers[name.encode()] = header(draw(PREFLIGHT[name]))
    return Probe(draw(st.sampled_from(["secured", "open"])), draw(st.sampled_from(METHODS)), target, headers)


def check(response: httpx.Response, probe: Probe) -> None:
    """What every answer must be, whatever was asked."""
    status, body, content_type = response.status_code, response.content, response.headers.get("content-type")
    assert status in ALLOWED, (status, content_type, body[:300])
    if status >= 400:
        assert content_type == "application/json", (status, content_type, body[:300])
        if probe.method != "HEAD":
            error = orjson.loads(body)["error"]
            assert CODES.get(error["code"]) == status and isinstance(error["message"], str), error
            asked = unquote(unquote(probe.target)) + repr(probe.headers)  # ids and tokens are echoed
            assert not [w for w in INTERNAL.findall(error["message"]) if w not in asked], error
    elif status == 200 and probe.method == "GET" and probe.target.split("?")[0].endswith("/stream"):
        assert content_type is not None and content_type.startswith("text/event-stream"), content_type
        assert body.rstrip().endswith(b"}"), body[-300:]  # it ended after its terminal frame
    assert not [word for word in ("Traceback", "object at 0x", "__future__") if word.encode() in body]


def test_every_endpoint_answers_fuzzed_requests_as_documented(
    clients: dict[str, httpx.Client], caplog: pytest.LogCaptureFixture
) -> None:
    statuses: Counter[int] = Counter()

    @settings(max_examples=1200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(probes())
    def fuzz(probe: Probe) -> None:
        client = clients[probe.gateway]
        client.cookies.clear()  # a session one example opened is no credential of the next
        try:
            response = client.request(probe.method, probe.target, headers=list(probe.headers.items()))
        except httpx.ReadTimeout:
            pytest.fail(f"no complete answer within {READ_TIMEOUT_S} s: {probe}")
        statuses[response.status_code] += 1
        check(response, probe)

    caplog.set_level(logging.WARNING)  # uvicorn's and asyncio's loggers: an unhandled error, a bad request
    uvicorn_log = logging.getLogger("uvicorn")  # its own logging config, if applied before, stops propagation
    uvicorn_log.addHandler(caplog.handler)
    try:
        with structlog.testing.capture_logs() as logged:  # the gateway's own lines
            fuzz()
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    print(f"statuses: {sorted(statuses.items())}")
    assert {200, 400, 401, 403, 404, 405} <= set(statuses), statuses  # the strategies reach every answer
    assert not {429, 503} & set(statuses), statuses  # one request at a time, streams that end, Redis up
    assert Counter(line["status"] for line in logged if line["event"] == "request") == statuses
    assert [line for line in logged if line["log_level"] not in ("debug", "info")] == []
    assert [f"{record.name}: {record.getMessage()}" for record in caplog.records] == []
