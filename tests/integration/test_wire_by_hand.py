"""Acceptance: the wire format alone is enough; entries written with redis-cli are processed too.

Keys here are built by hand from docs/protocol.md (not through `streams.keys`), the
way a producer in another language would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zlib
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis

from tests.conftest import RedisServer, WorkerProcess, conformance_cases
from tests.helpers import in_process_oracle, wait_for

CASES = {c["name"]: c for c in conformance_cases()}


def redis_cli(server: RedisServer, *args: str) -> str:
    binary = shutil.which("redis-cli")
    assert binary, "redis-cli ships with redis-server; install redis-server"
    done = subprocess.run(
        [binary, "-p", str(server.port), *args], capture_output=True, text=True, check=True, timeout=10
    )
    assert not done.stdout.startswith("(error)") and "ERR" not in done.stdout, done.stdout
    return done.stdout.strip()


def hand_keys(message_id: str, partitions: int) -> tuple[str, str, str, str]:
    k = zlib.crc32(message_id.encode("utf-8")) % partitions
    base = f"lcstream:{{{k}}}:{message_id}"
    return f"{base}:events", f"{base}:out", f"{base}:result", f"lcstream:{{{k}}}:dispatch"


async def test_redis_cli_written_messages_with_four_partitions(
    real_redis: Redis, redis_server: RedisServer, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    worker = spawn_worker(LCSTREAM_PARTITIONS="4")
    messages: dict[str, list[dict[str, Any]]] = {
        "chatcmpl-hand-1": CASES["reasoning_then_text"]["events"],
        "msg_01hand.2": CASES["parallel_tool_calls"]["events"],
        "lc_run--hand:3": CASES["unicode_text"]["events"],
        "hand-error-4": CASES["error_mid_stream"]["events"],
    }
    partitions_used = set()
    for n, (message_id, events) in enumerate(messages.items()):
        events_key, _, _, dispatch = hand_keys(message_id, 4)
        partitions_used.add(dispatch)
        for seq, event in enumerate(events, start=1):
            entry_id = "*" if n == 3 else f"0-{seq}"  # auto ids are accepted too
            redis_cli(
                redis_server, "XADD", events_key, entry_id, "e", json.dumps(event), "t", "1700000000000"
            )
        redis_cli(redis_server, "XADD", dispatch, "*", "m", message_id)
    assert len(partitions_used) > 1

    async def all_done() -> bool:
        return all([await real_redis.exists(hand_keys(m, 4)[2]) for m in messages])

    await wait_for(all_done, timeout_s=60, what="outcomes of the hand-written messages")
    for message_id, events in messages.items():
        _, out_key, result_key, _ = hand_keys(message_id, 4)
        expected = await in_process_oracle(events, message_id)
        outcome = orjson.loads(await real_redis.get(result_key))
        frames = [orjson.loads(fields[b"f"]) for _, fields in await real_redis.xrange(out_key)]
        texts = [f["data"] for f in frames if f["kind"] == "text"]
        assert texts == expected["text_deltas"]
        assert [f["data"] for f in frames if f["kind"] == "tool_call_chunk"] == expected["tool_call_chunks"]
        if "output" in expected:
            assert outcome == {"status": "completed", "message": expected["output"]}
        else:
            assert outcome["status"] == "failed"
            assert outcome["error"]["message"] == expected["error"]
    assert worker.terminate() == 0
