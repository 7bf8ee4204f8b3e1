"""The worker's hot path on the wire: commands packed by hiredis, replies read raw.

redis-py's asyncio client packs every argument in Python and runs a Python
callback over every reply (`XREAD` turns each entry's fields into a dict).
For a worker moving one entry and one frame per token that was ~40% of its
time, so the per-round commands (`XREAD`, the fenced frame scripts) go
through here: one `hiredis.pack_command` per command, one socket write per
batch, and replies as hiredis parsed them (lists of bytes). Everything else
(claims, upkeep) keeps using the client's own methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.typing import EncodableT

Command = Sequence[EncodableT]


class RawCommands:
    """Sends batches of commands on a connection borrowed from a client's pool."""

    def __init__(self, redis: Redis) -> None:
        self._pool = redis.connection_pool

    async def execute(self, commands: Sequence[Command]) -> list[Any]:
        """Send `commands` in one write; return their replies in order.

        An error reply comes back as its `ResponseError` (the other replies are
        still read); a connection fault raises, and the connection is dropped.
        """
        # hiredis's stub types the argument as a 1-tuple; it takes any length.
        packed = b"".join([hiredis.pack_command(tuple(command)) for command in commands])  # type: ignore[arg-type]
        connection = await self._pool.get_connection()
        try:
            await connection.send_packed_command(packed, check_health=False)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as exc:
                    replies.append(exc)
            return replies
        except BaseException:
            await connection.disconnect(nowait=True)
            raise
        finally:
            await self._pool.release(connection)

    async def xread(
        self, streams: dict[bytes, bytes], *, count: int, block_ms: int | None
    ) -> list[list[Any]]:
        """`XREAD` as Redis replies: `[[key, [[id, [field, value, ...]], ...]], ...]`, empty on timeout."""
        command: list[EncodableT] = [b"XREAD", b"COUNT", count]
        if block_ms is not None:
            command += [b"BLOCK", block_ms]
        command += [b"STREAMS", *streams.keys(), *streams.values()]
        (reply,) = await self.execute([command])
        if isinstance(reply, ResponseError):
            raise reply
        return reply or []


def field_map(flat: list[bytes]) -> dict[bytes, bytes]:
    """An entry's `[field, value, ...]` as a dict (an event entry's two pairs built directly)."""
    if len(flat) == 4:
        return {flat[0]: flat[1], flat[2]: flat[3]}
    pairs = iter(flat)
    return dict(zip(pairs, pairs, strict=True))
