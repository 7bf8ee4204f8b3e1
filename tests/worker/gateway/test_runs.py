"""The gateway's run endpoints over HTTP, with `lcstream serve` and `lcstream worker` processes: 100 SSE
clients of one run get the same events; any event id resumes with exactly the rest; run tokens."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis

from lcstream.streams.keys import Keyspace
from lcstream.streams.reader import read_frames
from lcstream.streams.run_handler import RedisStreamHandler
from lcstream.streams.tokens import mint_read_token
from tests.conftest import WorkerProcess
from tests.helpers import wait_for
from tests.streams.agent_graph import State, build_graph
from tests.worker.gateway.conftest import SpawnGateway
from tests.worker.gateway.support import raw_get

CLIENTS = 100
SPACE = Keyspace()
KEY = "runs-signing-key-0123456789abcdef"
OPERATOR = "runs-operator-token-0123456789"


def events_of(body: bytes) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, event, data) of each SSE event of a body (the `retry:` preamble left out)."""
    parsed = []
    for block in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            parsed.append((fields["id"], fields["event"], orjson.loads(fields["data"])))
    return parsed


def frames_by_message(events: list[tuple[str, str, dict[str, Any]]]) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = defaultdict(list)
    for _, kind, data in events:
        if kind == "frame":
            seqs[data["message_id"]].append(data["seq"])
    return dict(seqs)


async def index_exists(redis: Redis, run_id: str) -> bool:
    return bool(await redis.exists(SPACE.run(run_id).index))


async def test_100_clients_of_a_run_get_the_same_events_and_any_id_resumes_with_the_rest(
    real_redis: Redis, spawn_worker: Callable[..., WorkerProcess], spawn_gateway: SpawnGateway
) -> None:
    gateway = await spawn_gateway(LCSTREAM_GATEWAY_MAX_CLIENT_STREAMS=str(CLIENTS + 10))
    spawn_worker()
    handler = RedisStreamHandler(real_redis, run_id="gw-run", keyspace=SPACE)
    graph = asyncio.create_task(build_graph(0.02).ainvoke(State(notes=[]), config={"callbacks": [handler]}))
    await wait_for(lambda: index_exists(real_redis, "gw-run"), what="the run to start")
    clients = [asyncio.create_task(raw_get(gateway.port, "/v1/runs/gw-run/stream")) for _ in range(CLIENTS)]
    await graph
    answers = await asyncio.wait_for(asyncio.gather(*clients), 60)
    sequences = [events_of(body) for status, body, _ in answers if status == 200]
    assert len(sequences) == CLIENTS
    first = sequences[0]
    assert all(sequence == first for sequence in sequences)  # one reader, one order, for everybody
    assert first[-1][1:] == ("end", {"status": "completed", "error": None})
    members = [f[b"m"].decode() for _, f in await real_redis.xrange(SPACE.run("gw-run").index) if b"m" in f]
    stored = {m: [frame.seq for frame in await read_frames(real_redis, m, SPACE)] for m in members}
    assert frames_by_message(first) == stored and len(stored) == 3
    for point in random.Random(3).sample(range(len(first) - 1), 8):
        event_id = first[point][0]
        status, body, _ = await raw_get(
            gateway.port, "/v1/runs/gw-run/stream", f"Last-Event-ID: {event_id}\r\n"
        )
        assert status == 200
        rest = frames_by_message(events_of(body))
        expected = frames_by_message(first[point + 1 :])
        assert rest == expected, event_id  # exactly the rest, message by message
    status, _, _ = await raw_get(gateway.port, "/v1/runs/gw-run/stream", "Last-Event-ID: end\r\n")
    assert status == 204


async def test_run_status_and_what_a_run_token_opens(
    real_redis: Redis, spawn_worker: Callable[..., WorkerProcess], spawn_gateway: SpawnGateway
) -> None:
    gateway = await spawn_gateway(
        LCSTREAM_GATEWAY_OPERATOR_TOKEN=OPERATOR,
        LCSTREAM_GATEWAY_TOKEN_KEYS=KEY,
        LCSTREAM_GATEWAY_WAIT_FOR_START_S="0",
    )
    spawn_worker()
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        operator = {"Authorization": f"Bearer {OPERATOR}"}
        await wait_for(lambda: _listening(real_redis), what="the gateway's notices subscription")
        for run_id in ("run-a", "run-b"):
            handler = RedisStreamHandler(real_redis, run_id=run_id, keyspace=SPACE)
            await build_graph().ainvoke(State(notes=[]), config={"callbacks": [handler]})
        status = (await client.get("/v1/runs/run-a", headers=operator)).json()
        assert status["status"] == "completed" and [m["node"] for m in status["messages"]] == [
            "plan",
            "answer",
            "answer",
        ]
        token = mint_read_token(run_id="run-a", key=KEY, ttl_s=60)
        mine = status["messages"][1]["message_id"]
        other = (await client.get("/v1/runs/run-b", headers=operator)).json()["messages"][0]["message_id"]
        as_reader = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/v1/runs/run-a", headers=as_reader)).status_code == 200
        assert (await client.get(f"/v1/runs/run-a/stream?token={token}")).status_code == 200
        assert (await client.get(f"/v1/messages/{mine}", headers=as_reader)).status_code == 200  # listed
        for path in ("/v1/runs/run-b", f"/v1/messages/{other}", "/v1/runs"):
            assert (await client.get(path, headers=as_reader)).status_code == 403, path
        message_token = {"Authorization": f"Bearer {mint_read_token(mine, key=KEY, ttl_s=60)}"}
        assert (await client.get("/v1/runs/run-a", headers=message_token)).status_code == 403
        assert (await client.get("/v1/runs/nothing", headers=operator)).status_code == 404
        assert (await client.get("/v1/runs/nothing/stream", headers=operator)).status_code == 404

        async def both_listed() -> bool:
            listed = (await client.get("/v1/runs", headers=operator)).json()["runs"]
            return [(r["run_id"], r["status"]) for r in listed] == [
                ("run-b", "completed"),
                ("run-a", "completed"),
            ]

        await wait_for(both_listed, what="both runs in GET /v1/runs")


async def _listening(redis: Redis) -> bool:
    ((_, subscribers),) = await redis.pubsub_numsub(SPACE.run_notices)
    return int(subscribers) == 1
