"""The operations page's endpoints on a real redis-server: operators only, the sampler's view against
Redis, a dead letter's events, retry and delete; and what one sample costs Redis."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from redis.asyncio import Redis

from lcstream.config import load_settings
from lcstream.streams.keys import Keyspace
from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_outcome
from lcstream.streams.tokens import mint_read_token
from lcstream.worker.engine.runner import Worker
from lcstream.worker.gateway.sampler import OperationsSampler
from tests.conftest import RedisServer, free_port
from tests.helpers import running_worker, settings_for, wait_for
from tests.worker.engine.mixes import poison, write_mix
from tests.worker.gateway.support import serve_in_process, text_events

OPERATOR = "operations-operator-token-0123456789"
KEY = "operations-signing-key-0123456789abcdef"
ACTIONS = [
    ("GET", "/v1/operations"),
    ("GET", "/v1/operations/dead/ops-bad"),
    ("POST", "/v1/operations/dead/ops-bad/retry"),
    ("DELETE", "/v1/operations/dead/ops-bad"),
]


def gateway_settings(url: str, **overrides: Any) -> Any:
    base = {"consumer": "ops-gateway", "gateway_operator_token": OPERATOR, "gateway_token_keys": KEY,
            "gateway_sample_interval_s": 0.1}  # fmt: skip
    return load_settings(redis_url=url, **{**base, **overrides})


async def _dead_lettered(redis: Redis, url: str) -> None:
    await publish_events(redis, text_events("ops-good", ["fine"]))
    await write_mix(redis, [poison("ops-bad", "invalid_json", random.Random(5), 1)], Keyspace())
    await Worker(redis, settings_for(redis_url=url)).run(until_idle=True)


async def test_without_the_operator_credential_the_page_and_its_data_are_refused(
    real_redis: Redis, redis_server: RedisServer
) -> None:
    await _dead_lettered(real_redis, redis_server.url)
    token = mint_read_token("ops-bad", key=KEY, ttl_s=60)
    async with serve_in_process(gateway_settings(redis_server.url)) as client:
        page = await client.get("/operations")
        assert page.status_code == 401 and "Operators only" in page.text and "operations.js" not in page.text
        read_token = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/operations", headers=read_token)).status_code == 403
        for method, path in ACTIONS:
            stranger = await client.request(method, path)
            assert (stranger.status_code, stranger.json()["error"]["code"]) == (401, "unauthorized"), path
            viewer = await client.request(method, path, headers=read_token)  # even the letter's own message
            assert (viewer.status_code, viewer.json()["error"]["code"]) == (403, "forbidden"), path
        assert await real_redis.xlen(Keyspace().dead) == 1  # the refused retry and delete did nothing

        await client.post("/v1/session", headers={"Authorization": f"Bearer {OPERATOR}"})
        page = await client.get("/operations")
        assert page.status_code == 200 and "operations.js" in page.text
        assert (await client.get("/v1/operations")).status_code == 200


async def test_a_dead_letter_shows_its_events_and_is_retried_or_deleted(
    real_redis: Redis, redis_server: RedisServer
) -> None:
    await _dead_lettered(real_redis, redis_server.url)
    stored = await real_redis.xrange(Keyspace().message("ops-bad").events)
    async with serve_in_process(gateway_settings(redis_server.url, gateway_auth="off")) as client:
        opened = (await client.get("/v1/operations/dead/ops-bad")).json()
        assert [letter["reason"] for letter in opened["letters"]] == ["invalid_json"]
        assert opened["events_total"] == len(stored) == len(opened["events"])
        assert [e["raw"].encode() for e in opened["events"]] == [fields[b"e"] for _, fields in stored]
        assert opened["outcome"]["status"] == "failed"
        assert (await client.get("/v1/operations/dead/nobody")).status_code == 404
        assert (await client.get("/v1/operations/dead/bad%20id")).json()["error"][
            "code"
        ] == "invalid_message_id"
        refused = await client.post("/v1/operations/dead/ops-good/retry")  # it completed
        assert (refused.status_code, refused.json()["error"]["code"]) == (409, "retry_refused")
        assert (await client.post("/v1/operations/dead/gone/retry")).status_code == 404

        retried = (await client.post("/v1/operations/dead/ops-bad/retry")).json()
        assert retried["message_id"] == "ops-bad" and retried["dispatch_id"]
        assert (
            await real_redis.xlen(Keyspace().dead) == 0 and await read_outcome(real_redis, "ops-bad") is None
        )
        await Worker(real_redis, settings_for(redis_url=redis_server.url)).run(until_idle=True)  # fails again
        deleted = await client.delete("/v1/operations/dead/ops-bad")
        assert deleted.json() == {"message_id": "ops-bad", "deleted": 1}
        assert await real_redis.xlen(Keyspace().dead) == 0
        assert (await client.delete("/v1/operations/dead/ops-bad")).status_code == 404  # none left
        assert (await client.get("/v1/operations", params={"after": "x"})).status_code == 400


async def test_the_sampler_matches_redis_and_one_sample_costs_3_plus_2n_commands(
    real_redis: Redis, redis_server: RedisServer
) -> None:
    partitions = 3
    keyspace = Keyspace(partitions=partitions)
    sampler = OperationsSampler(real_redis, keyspace, "workers", interval_s=1, window_s=60)
    poisoned = [
        poison(f"ops-p{i}", kind, random.Random(i), 1)
        for i, kind in enumerate(["invalid_json", "invalid_shape"] * 2)
    ]
    async with running_worker(
        real_redis, redis_url=redis_server.url, partitions=partitions, figures_interval_s=0.05
    ):
        await write_mix(real_redis, poisoned, keyspace)
        for i in range(6):  # announced, never written: they stay pending (waiting) in the group
            await real_redis.xadd(keyspace.message(f"ops-w{i}").dispatch, {"m": f"ops-w{i}"})
        await wait_for(lambda: _settled(real_redis, keyspace), what="four dead letters, six claimed")
        await sampler.sample()
        await wait_for(lambda: _published_again(sampler), what="a second publication of the worker")
    view = sampler.view()
    latest = view["samples"][-1]
    assert latest["pending"] == [
        (await real_redis.xinfo_groups(d))[0]["pending"] for d in keyspace.all_dispatch()
    ]
    assert sum(latest["pending"]) == 6 and latest["lag"] == [0] * partitions
    assert latest["workers"] == 1 and latest["ended_per_s"].keys() <= {
        "failed:invalid_json",
        "failed:invalid_shape",
    }
    (worker,) = view["workers"]
    assert (worker["consumer"], worker["running"], worker["holds_entries"], worker["pending"]) == (
        "test-worker",
        True,
        True,
        6,
    )
    assert view["dead_letters"]["total"] == 4
    assert {d["message_id"] for d in view["dead_letters"]["letters"]} == {m.message_id for m in poisoned}
    assert [s["seq"] for s in sampler.view(after=1)["samples"]] == [s["seq"] for s in view["samples"][1:]]

    # The worker stopped: what one sample costs, alone on the server (INFO itself counted once).
    before = await _calls(real_redis)
    await sampler.sample()
    spent = {name: n - before.get(name, 0) for name, n in (await _calls(real_redis)).items()}
    spent = {name: n for name, n in spent.items() if n}
    assert spent == {"hgetall": 1, "xinfo|groups": partitions, "xinfo|consumers": partitions,
                     "xlen": 1, "xrevrange": 1, "info": 1}  # fmt: skip
    (gone,) = sampler.view()["workers"]
    assert not gone["running"] and gone["holds_entries"]  # it left its entries for a peer


async def test_the_sampler_reports_redis_faults_and_hostile_keys_and_recovers(
    real_redis: Redis, redis_server: RedisServer
) -> None:
    sampler = OperationsSampler(real_redis, Keyspace(), "workers", interval_s=0.05, window_s=60)
    await real_redis.set(Keyspace().workers, "squatted")  # a key of another type where the hash goes
    running = asyncio.create_task(sampler.run())
    try:
        await wait_for(lambda: _problem_is(sampler, "WRONGTYPE"), what="the hostile key reported")
        await real_redis.delete(Keyspace().workers)
        await wait_for(lambda: _problem_is(sampler, None), what="the problem cleared")
        assert sampler.view()["samples"]  # sampling went on
        sampler.stop()
        await asyncio.wait_for(running, 5)  # stop() ends it (the gateway's shutdown relies on it)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=1)
    try:
        stranded = OperationsSampler(unreachable, Keyspace(), "workers", interval_s=0.05, window_s=60)
        running = asyncio.create_task(stranded.run())
        await wait_for(lambda: _problem_is(stranded, "Error"), what="no Redis reported")
        assert not running.done() and stranded.view()["samples"] == []  # it keeps trying
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await unreachable.aclose()


async def _problem_is(sampler: OperationsSampler, part: str | None) -> bool:
    problem = sampler.view()["problem"]
    return problem is None if part is None else problem is not None and part in problem


async def _settled(redis: Redis, keyspace: Keyspace) -> bool:
    return await redis.xlen(keyspace.dead) == 4 and await _pending(redis, keyspace, 6)


async def _published_again(sampler: OperationsSampler) -> bool:
    await sampler.sample()
    return bool(sampler.view()["samples"][-1]["workers"] == 1)


async def _pending(redis: Redis, keyspace: Keyspace, count: int) -> bool:
    return sum([(await redis.xinfo_groups(d))[0]["pending"] for d in keyspace.all_dispatch()]) == count  # type: ignore[no-any-return]


async def _calls(redis: Redis) -> dict[str, int]:
    """Calls of each command so far, from `INFO commandstats`."""
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
