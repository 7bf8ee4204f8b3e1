"""Writing frames to `O(M)`/`L(M)` and committing outcomes: one fenced script call per message per batch.

Every write is fenced on this consumer still owning the message's dispatch
entry (`XPENDING` names it), so a worker that lost its claim writes no frame,
no outcome and no ack. Frames have explicit ids `0-seq`: a rebuilt message's
frames that already exist are refused by Redis (and not published again), so
`O(M)` never holds a duplicate. When a message ends, the same call writes
`R(M)`, the lifecycle notice and the retention TTLs, then acks.

One script call per message instead of two commands per frame also keeps
client-side packing and reply parsing, the worker's largest cost, small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError
from redis.typing import EncodableT

from streams.events import now_ms
from streams.frames import Frame
from streams.keys import Keyspace
from worker.handler import MessageHandler
from worker.wire import Command, RawCommands

# KEYS: D(k), O(M), R(M), E(M)
# ARGV: 1 dispatch id, 2 consumer, 3 group, 4 L(M), 5 first seq, 6 frame count n, 7..6+n frame bodies,
#       and when the message ends: outcome, notices channel, notice, retention s
APPEND_LUA = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[3], ARGV[1], ARGV[1], 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then return 0 end
local n, first = tonumber(ARGV[6]), tonumber(ARGV[5])
local ending = #ARGV > 6 + n
if ending and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('XACK', KEYS[1], ARGV[3], ARGV[1])
  return 2
end
for i = 0, n - 1 do
  local body, seq = ARGV[7 + i], first + i
  if type(redis.pcall('XADD', KEYS[2], '0-' .. seq, 'f', body)) == 'string' then
    redis.call('PUBLISH', ARGV[4], '{"seq":' .. seq .. ',' .. string.sub(body, 2))
  end
end
if ending then
  local at = 7 + n
  redis.call('SET', KEYS[3], ARGV[at], 'EX', ARGV[at + 3])
  redis.call('PUBLISH', ARGV[at + 1], ARGV[at + 2])
  redis.call('EXPIRE', KEYS[2], ARGV[at + 3])
  redis.call('EXPIRE', KEYS[4], ARGV[at + 3])
  redis.call('XACK', KEYS[1], ARGV[3], ARGV[1])
end
return 1
"""

DEAD_LETTER_MAX_LEN = 100_000


class Verdict(IntEnum):
    """What a fenced write found."""

    LOST = 0  # another consumer owns the message now: nothing was written
    WRITTEN = 1
    ALREADY_COMMITTED = 2  # an earlier delivery wrote the outcome: only acked


@dataclass(slots=True)
class Batch:
    """What one round of reading produced: frames per message, and which messages opened."""

    frames: list[tuple[MessageHandler, list[Frame]]] = field(default_factory=list)
    started: list[MessageHandler] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.frames or self.started)


class FramePublisher:
    """Turns a `Batch` into one pipeline of fenced script calls."""

    def __init__(
        self,
        wire: RawCommands,
        redis: Redis,
        keyspace: Keyspace,
        *,
        group: str,
        consumer: str,
        retention_s: int,
    ) -> None:
        self._wire = wire
        self._redis = redis
        self._keyspace = keyspace
        self._group = group
        self._consumer = consumer
        self._retention_s = retention_s
        self._sha: str | None = None

    async def publish(self, batch: Batch) -> dict[str, Verdict]:
        """Write the batch; return each written message's verdict."""
        try:
            return await self._publish_once(batch)
        except NoScriptError:
            self._sha = None  # Redis restarted or failed over: load the script again
            return await self._publish_once(batch)

    async def _publish_once(self, batch: Batch) -> dict[str, Verdict]:
        if self._sha is None:
            self._sha = await self._redis.script_load(APPEND_LUA)
        notices = self._keyspace.notices
        commands: list[Command] = [
            (b"PUBLISH", notices, _notice(handler.message_id, "started")) for handler in batch.started
        ]
        script_replies: list[int] = []  # where each message's script call sits in the batch
        for handler, frames in batch.frames:
            if (dead := handler.dead) is not None:
                dead_letter = self._dead_letter(
                    handler.message_id, dead.reason, dead.error,
                    deliveries=handler.deliveries, dispatch_id=handler.delivery_id,
                )  # fmt: skip
                commands.append(dead_letter)
            keys = handler.keys
            command: list[EncodableT] = [
                b"EVALSHA", self._sha, 4, keys.dispatch, keys.out, keys.result, keys.events,
                handler.delivery_id, self._consumer, self._group, keys.live,
                frames[0].seq, len(frames), *[frame.body_json() for frame in frames],
            ]  # fmt: skip
            if (outcome := handler.outcome) is not None:
                notice = _notice(handler.message_id, outcome.status)
                command += [outcome.to_json(), notices, notice, self._retention_s]
            script_replies.append(len(commands))
            commands.append(command)
        replies = await self._wire.execute(commands)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return {
            handler.message_id: Verdict(replies[at])
            for (handler, _), at in zip(batch.frames, script_replies, strict=True)
        }

    async def reject(self, dispatch: str, entries: list[tuple[bytes, str, str, str]]) -> None:
        """Dead-letter and ack dispatch entries that name no usable message (id, m, reason, error)."""
        commands: list[Command] = []
        for delivery_id, raw_id, reason, error in entries:
            commands.append(self._dead_letter(raw_id, reason, error, deliveries=1, dispatch_id=delivery_id))
            commands.append((b"XACK", dispatch, self._group, delivery_id))
        for reply in await self._wire.execute(commands):
            if isinstance(reply, ResponseError):
                raise reply

    def _dead_letter(
        self, message_id: str, reason: str, error: str, *, deliveries: int, dispatch_id: bytes
    ) -> Command:
        """The `XADD` of a `P:dead` entry: what failed, why, and where it came from."""
        return (
            b"XADD", self._keyspace.dead, b"MAXLEN", b"~", DEAD_LETTER_MAX_LEN, b"*",
            b"m", message_id, b"reason", reason, b"error", error,
            b"deliveries", deliveries, b"dispatch_id", dispatch_id, b"t", now_ms(),
        )  # fmt: skip


def _notice(message_id: str, status: str) -> bytes:
    return orjson.dumps({"message_id": message_id, "status": status})
