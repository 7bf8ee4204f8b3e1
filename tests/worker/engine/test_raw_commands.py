"""The worker's raw command path: hiredis-packed batches, replies as Redis sent them."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from lcstream.worker.engine.raw_commands import RawCommands, field_map


async def test_a_batch_returns_replies_in_order_with_errors_in_place(any_redis: Redis) -> None:
    wire = RawCommands(any_redis)
    replies = await wire.execute(
        [(b"SET", "k", "v"), (b"INCR", "k"), (b"GET", "k"), (b"XADD", "s", "0-1", "f", 1.5)]
    )
    assert replies[0] == b"OK"
    assert isinstance(replies[1], ResponseError)
    assert replies[2:] == [b"v", b"0-1"]
    assert await any_redis.get("k") == b"v"  # the connection went back to the pool in a clean state


async def test_xread_returns_raw_entries_and_nothing_when_empty(any_redis: Redis) -> None:
    wire = RawCommands(any_redis)
    await any_redis.xadd("s", {"e": "x", "t": "1"}, id="0-1")
    await any_redis.xadd("s", {"e": "y"}, id="0-2")
    reply = await wire.xread({b"s": b"0-0", b"empty": b"0-0"}, count=10, block_ms=None)
    assert reply == [[b"s", [[b"0-1", [b"e", b"x", b"t", b"1"]], [b"0-2", [b"e", b"y"]]]]]
    assert await wire.xread({b"s": b"0-2"}, count=10, block_ms=1) == []


def test_field_map_pairs_fields_and_values() -> None:
    assert field_map([b"e", b"x", b"t", b"1"]) == {b"e": b"x", b"t": b"1"}
    assert field_map([b"e", b"x"]) == {b"e": b"x"}
    assert field_map([]) == {}
