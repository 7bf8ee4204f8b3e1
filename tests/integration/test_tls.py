"""TLS: a worker over `rediss://` with the server verified against a CA file, and mutual TLS.

Each test starts its own TLS-only redis-server (`--port 0`) with certificates
made by the `openssl` command line: a CA, a server certificate for
127.0.0.1, one for another host, and a client certificate.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from lcstream.streams.connection import connect_single
from lcstream.streams.keys import Keyspace
from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_outcome
from tests.conftest import conformance_cases, free_port
from tests.helpers import assert_frames_match, wait_for
from tests.integration.processes import Workers, lcstream_env, run_lcstream

CASES = {c["name"]: c for c in conformance_cases()}
EXIT_UNAVAILABLE = 3


@dataclass(frozen=True)
class Pki:
    """Certificates and keys in `directory`: `ca`, `server` (127.0.0.1), `elsewhere`, `client`."""

    directory: Path

    def crt(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"


def openssl(directory: Path, *args: str) -> None:
    binary = shutil.which("openssl")
    assert binary, "the openssl command line is needed to make the test certificates"
    done = subprocess.run([binary, *args], cwd=directory, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"openssl {' '.join(args)} failed: {done.stderr}"


def make_pki(directory: Path) -> Pki:
    """A throwaway CA and the certificates it signs."""
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        directory, "req", "-x509", "-new", *new_key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=lcstream test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    extensions = {
        "server": "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        "elsewhere": "subjectAltName=DNS:redis.elsewhere.invalid\nextendedKeyUsage=serverAuth\n",
        "client": "extendedKeyUsage=clientAuth\n",
    }
    for name, extension in extensions.items():
        (directory / f"{name}.ext").write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n" + extension
        )
        openssl(
            directory, "req", "-new", *new_key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN=lcstream test {name}",
        )  # fmt: skip
        openssl(
            directory, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
        )  # fmt: skip
    return Pki(directory)


@dataclass(frozen=True)
class TlsServer:
    """A TLS-only redis-server the test owns."""

    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"


@contextmanager
def tls_redis_server(
    directory: Path, pki: Pki, *, certificate: str, auth_clients: bool
) -> Iterator[TlsServer]:
    """redis-server with only a TLS port, presenting `certificate`; fails if it can't do TLS."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server not found: run 'make test' or 'apt-get install -y redis-server'")
    port, log, stderr_path = free_port(), directory / "redis.log", directory / "redis.stderr"
    args = [
        binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--dir", str(directory), "--logfile", str(log),
        "--tls-cert-file", str(pki.crt(certificate)), "--tls-key-file", str(pki.key(certificate)),
        "--tls-ca-cert-file", str(pki.crt("ca")), "--tls-auth-clients", "yes" if auth_clients else "no",
    ]  # fmt: skip
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(args, stderr=stderr)
    # Readiness only: redis-py's sync client does not check the host name by default.
    probe = redis.Redis(
        host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(pki.crt("ca")),
        ssl_certfile=str(pki.crt("client")), ssl_keyfile=str(pki.key("client")), socket_connect_timeout=0.2,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    said = stderr_path.read_text() + (log.read_text() if log.exists() else "")
                    pytest.fail(
                        f"redis-server with --tls-port did not start (built without TLS?): {said[-2000:]}"
                    )
                time.sleep(0.02)
        yield TlsServer(port, log)
    finally:
        probe.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_server(tmp_path: Path, pki: Pki) -> Iterator[TlsServer]:
    with tls_redis_server(tmp_path, pki, certificate="server", auth_clients=False) as server:
        yield server


@pytest.fixture
def mtls_server(tmp_path: Path, pki: Pki) -> Iterator[TlsServer]:
    with tls_redis_server(tmp_path, pki, certificate="server", auth_clients=True) as server:
        yield server


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    with Workers(tmp_path) as started:
        yield started


@pytest.fixture
async def clients() -> AsyncIterator[list[Redis]]:
    """Clients a test opens (append them); closed at the end, also when the test fails."""
    opened: list[Redis] = []
    yield opened
    for client in opened:
        await client.aclose()


async def refused_connection(client: Redis) -> RedisConnectionError:
    """The client's first command fails to connect; returns the error."""
    with pytest.raises(RedisConnectionError) as caught:
        await client.ping()
    return caught.value


async def process_one_message(
    url: str, tls: dict[str, Path], workers: Workers, clients: list[Redis], case_name: str
) -> dict[str, str]:
    """Publish a fixture over TLS, let a worker (given the same TLS files) process it; return its env."""
    case = CASES[case_name]
    producer = connect_single(url, ca_file=tls["ca"], cert_file=tls.get("cert"), key_file=tls.get("key"))
    clients.append(producer)
    assert await publish_events(producer, case["events"]) == case["message_id"]
    # LCSTREAM_TLS_CA_FILE, and for mutual TLS LCSTREAM_TLS_CERT_FILE and LCSTREAM_TLS_KEY_FILE.
    env = lcstream_env(url, **{f"LCSTREAM_TLS_{name.upper()}_FILE": str(path) for name, path in tls.items()})
    worker = workers.start(env)

    async def done() -> bool:
        return await read_outcome(producer, case["message_id"]) is not None

    await wait_for(done, timeout_s=60, what=f"the outcome of {case['message_id']} over TLS")
    await assert_frames_match(producer, case["message_id"], case["expected"], Keyspace())
    outcome = await read_outcome(producer, case["message_id"])
    assert outcome is not None and outcome.message == case["expected"]["output"]
    assert worker.terminate() == 0
    started = next(line for line in worker.log_lines() if line["event"] == "started")
    assert started["redis"] == url
    return env


async def test_worker_over_tls_processes_a_published_message(
    tls_server: TlsServer, pki: Pki, workers: Workers, clients: list[Redis]
) -> None:
    env = await process_one_message(
        tls_server.url, {"ca": pki.crt("ca")}, workers, clients, "single_tool_call"
    )
    done = run_lcstream("result", CASES["single_tool_call"]["message_id"], env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["message"] == CASES["single_tool_call"]["expected"]["output"]
    # There is no plain-text listener to fall back to.
    plain = Redis(host="127.0.0.1", port=tls_server.port, socket_connect_timeout=2, socket_timeout=2)
    clients.append(plain)
    await refused_connection(plain)


async def test_a_client_without_the_ca_is_refused(
    tls_server: TlsServer, pki: Pki, clients: list[Redis]
) -> None:
    # Without LCSTREAM_TLS_CA_FILE the system store is used, and it does not know the test CA.
    system_store = connect_single(tls_server.url)
    clients.append(system_store)
    error = await refused_connection(system_store)
    assert isinstance(error.__context__, ssl.SSLCertVerificationError), repr(error)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
    done = run_lcstream("result", "msg-tool-1", env=lcstream_env(tls_server.url))
    assert done.returncode == EXIT_UNAVAILABLE
    assert "CERTIFICATE_VERIFY_FAILED" in done.stderr
    # The same client with the CA file gets through (no outcome yet: exit 4).
    done = run_lcstream(
        "result", "msg-tool-1", env=lcstream_env(tls_server.url, LCSTREAM_TLS_CA_FILE=str(pki.crt("ca")))
    )
    assert done.returncode == 4, done.stderr


async def test_a_certificate_for_another_host_is_refused(
    tmp_path: Path, pki: Pki, clients: list[Redis]
) -> None:
    # Signed by the trusted CA, but for redis.elsewhere.invalid, not for 127.0.0.1.
    with tls_redis_server(tmp_path, pki, certificate="elsewhere", auth_clients=False) as server:
        client = connect_single(server.url, ca_file=pki.crt("ca"))
        clients.append(client)
        error = await refused_connection(client)
    assert isinstance(error.__context__, ssl.SSLCertVerificationError), repr(error)
    assert "mismatch, certificate is not valid for '127.0.0.1'" in error.__context__.verify_message


async def test_mutual_tls_needs_the_client_certificate(
    mtls_server: TlsServer, pki: Pki, workers: Workers, clients: list[Redis]
) -> None:
    tls = {"ca": pki.crt("ca"), "cert": pki.crt("client"), "key": pki.key("client")}
    env = await process_one_message(mtls_server.url, tls, workers, clients, "unicode_text")
    done = run_lcstream("result", "msg-uni-1", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["message"] == CASES["unicode_text"]["expected"]["output"]

    # With the CA but no client certificate, the server hangs up during the handshake.
    without_cert = {
        k: v for k, v in env.items() if k not in ("LCSTREAM_TLS_CERT_FILE", "LCSTREAM_TLS_KEY_FILE")
    }
    done = run_lcstream("result", "msg-uni-1", env=without_cert)
    assert done.returncode == EXIT_UNAVAILABLE, done.stderr
    assert done.stdout == ""
    anonymous = connect_single(mtls_server.url, ca_file=pki.crt("ca"))
    clients.append(anonymous)
    await refused_connection(anonymous)

    async def server_says_why() -> bool:
        return mtls_server.log.read_text().count("peer did not return a certificate") >= 2

    await wait_for(server_says_why, timeout_s=10, what="the server logging the missing client certificates")
