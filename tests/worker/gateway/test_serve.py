"""`lcstream serve` as a process: it refuses a public address without a credential, and everything it
logs, uvicorn's lines included, is one JSON object per line with no query string in it."""

from __future__ import annotations

import signal
import subprocess

import httpx
import orjson

from tests.worker.gateway.conftest import SpawnGateway
from tests.worker.gateway.support import LCSTREAM

KEY = "serve-signing-key-0123456789abcdef"


def test_serve_refuses_an_address_beyond_loopback_without_a_credential(worker_env: dict[str, str]) -> None:
    runs = {
        "public": (["--host", "0.0.0.0"], {}),  # noqa: S104 - the address under test
        "auth on, no credential": (["--host", "127.0.0.1"], {"LCSTREAM_GATEWAY_AUTH": "on"}),
    }
    for what, (args, env) in runs.items():
        done = subprocess.run(
            [LCSTREAM, "serve", "--port", "0", *args], env={**worker_env, **env},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 2, (what, done.stderr)
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("lcstream serve: "), (what, done.stderr)
        assert "LCSTREAM_GATEWAY_OPERATOR_TOKEN" in lines[0], what


async def test_every_log_line_is_json_and_no_token_reaches_the_log(spawn_gateway: SpawnGateway) -> None:
    gateway = await spawn_gateway(LCSTREAM_GATEWAY_TOKEN_KEYS=KEY, LCSTREAM_GATEWAY_WAIT_FOR_START_S="0")
    secret = "not-a-valid-token-but-it-must-not-be-logged"  # noqa: S105 - a test value
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        assert (await client.get(f"/v1/messages/m/stream?token={secret}")).status_code == 401
        assert (await client.get("/no/such/page?token=" + secret)).status_code == 404
    assert gateway.stop() == -signal.SIGTERM  # shut down cleanly, then uvicorn re-raises the signal
    text = gateway.log_path.read_text()
    assert secret not in text
    lines = [orjson.loads(line) for line in text.splitlines() if line.strip()]  # fails on a non-JSON line
    requests = [(line["path"], line["status"]) for line in lines if line["event"] == "request"]
    assert ("/v1/messages/m/stream", 401) in requests and ("/no/such/page", 404) in requests
    uvicorn_lines = [line for line in lines if line.get("logger", "").startswith("uvicorn")]
    assert any("Application startup complete" in line["event"] for line in uvicorn_lines), uvicorn_lines
