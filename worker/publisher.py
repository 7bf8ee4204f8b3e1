"""Writing frames to `O(M)`/`L(M)` and committing outcomes: fenced script calls, many messages each.

Every message's write is fenced on this consumer still owning its dispatch
entry (`XPENDING` names it), so a worker that lost a claim writes no frame,
no outcome and no ack for it. Frames have explicit ids `0-seq`: a rebuilt
message's frames that already exist are refused by Redis (and not published
again), so `O(M)` never holds a duplicate. When a message ends, the same call
writes `R(M)`, the lifecycle notice and the retention TTLs, then acks.

One call carries every message of a round (up to `FRAMES_PER_CALL` frames):
in live traffic a round holds about one event per message, and a call per
message cost Redis more than the writes themselves. All keys of a call share
the partition's hash slot, so it is valid on a cluster too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError
from redis.typing import EncodableT, FieldT

from streams.cluster import RedisClient
from streams.events import now_ms
from streams.frames import Frame
from streams.keys import Keyspace
from worker.handler import MessageHandler
from worker.wire import Command, RawCommands

# KEYS: D(k), then per message O(M), R(M), E(M).
# ARGV: 1 consumer, 2 group, 3 notices channel, 4 retention s, 5 live publish command, then per message:
#       dispatch id, L(M), first seq, frame count n, ending (0/1), n frame bodies, [outcome, notice].
# Returns one verdict per message (see Verdict).
APPEND_LUA = """
local dispatch, consumer, group, notices, retention = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local live_publish = ARGV[5]
local verdicts, at, k = {}, 6, 2
while at <= #ARGV do
  local id, live, first, n = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local ending = ARGV[at + 4] == '1'
  local out, result, events, bodies = KEYS[k], KEYS[k + 1], KEYS[k + 2], at + 5
  local verdict = 1
  local pending = redis.call('XPENDING', dispatch, group, id, id, 1)
  if #pending == 0 or pending[1][2] ~= consumer then
    verdict = 0
  elseif ending and redis.call('EXISTS', result) == 1 then
    redis.call('XACK', dispatch, group, id)
    verdict = 2
  else
    for i = 0, n - 1 do
      local body, seq = ARGV[bodies + i], first + i
      if type(redis.pcall('XADD', out, '0-' .. seq, 'f', body)) == 'string' then
        redis.call(live_publish, live, '{"seq":' .. seq .. ',' .. string.sub(body, 2))
      end
    end
    if ending then
      local o = bodies + n
      redis.call('SET', result, ARGV[o], 'EX', retention)
      redis.call('PUBLISH', notices, ARGV[o + 1])
      redis.call('EXPIRE', out, retention)
      redis.call('EXPIRE', events, retention)
      redis.call('XACK', dispatch, group, id)
    end
  end
  verdicts[#verdicts + 1] = verdict
  at, k = bodies + n + (ending and 2 or 0), k + 3
end
return verdicts
"""

# Frames one script call carries at most: Redis runs a script to the end, so a round's writes are
# split to keep other clients' commands from waiting long behind one.
FRAMES_PER_CALL = 2_000

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
    """Turns a `Batch` into fenced script calls on the node that owns the partition.

    Dead letters go to `P:dead` through `dead_letters`, a client that routes by
    key: on a cluster that stream lives in another slot than the partition.
    """

    def __init__(
        self,
        wire: RawCommands,
        node: Redis,
        dead_letters: RedisClient,
        keyspace: Keyspace,
        *,
        group: str,
        consumer: str,
        retention_s: int,
        live_publish: bytes,
    ) -> None:
        self._wire = wire
        self._node = node
        self._dead_letters = dead_letters
        self._live_publish = live_publish
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
            self._sha = await self._node.script_load(APPEND_LUA)
        notices = self._keyspace.notices
        # Before the outcomes: a dead letter may be written twice (a retry), never lost.
        for handler, _ in batch.frames:
            if (dead := handler.dead) is not None:
                await self._dead_letter(
                    handler.message_id, dead.reason, dead.error,
                    deliveries=handler.deliveries, dispatch_id=handler.delivery_id,
                )  # fmt: skip
        commands: list[Command] = [
            (b"PUBLISH", notices, _notice(handler.message_id, "started")) for handler in batch.started
        ]
        calls: list[list[MessageHandler]] = []  # the messages of each script call, in order
        for chunk in _chunks(batch.frames):
            keys: list[EncodableT] = [chunk[0][0].keys.dispatch]
            args: list[EncodableT] = [
                self._consumer, self._group, notices, self._retention_s, self._live_publish
            ]  # fmt: skip
            for handler, frames in chunk:
                message, outcome = handler.keys, handler.outcome
                keys += [message.out, message.result, message.events]
                args += [
                    handler.delivery_id,
                    message.live,
                    frames[0].seq,
                    len(frames),
                    int(outcome is not None),
                ]
                args += [frame.body_json() for frame in frames]
                if outcome is not None:
                    args += [outcome.to_json(), _notice(handler.message_id, outcome.status)]
            commands.append((b"EVALSHA", self._sha, len(keys), *keys, *args))
            calls.append([handler for handler, _ in chunk])
        replies = await self._wire.execute(commands)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        verdicts: dict[str, Verdict] = {}
        for handlers, reply in zip(calls, replies[len(replies) - len(calls) :], strict=True):
            for handler, verdict in zip(handlers, reply, strict=True):
                verdicts[handler.message_id] = Verdict(verdict)
        return verdicts

    async def reject(self, dispatch: str, entries: list[tuple[bytes, str, str, str]]) -> None:
        """Dead-letter and ack dispatch entries that name no usable message (id, m, reason, error)."""
        for delivery_id, raw_id, reason, error in entries:
            await self._dead_letter(raw_id, reason, error, deliveries=1, dispatch_id=delivery_id)
        await self._node.xack(dispatch, self._group, *[delivery_id for delivery_id, *_ in entries])

    async def _dead_letter(
        self, message_id: str, reason: str, error: str, *, deliveries: int, dispatch_id: bytes
    ) -> None:
        """Write a `P:dead` entry: what failed, why, and where it came from."""
        fields: dict[FieldT, EncodableT] = {
            b"m": message_id, b"reason": reason, b"error": error,
            b"deliveries": deliveries, b"dispatch_id": dispatch_id, b"t": now_ms(),
        }  # fmt: skip
        await self._dead_letters.xadd(self._keyspace.dead, fields, maxlen=DEAD_LETTER_MAX_LEN)


def _notice(message_id: str, status: str) -> bytes:
    return orjson.dumps({"message_id": message_id, "status": status})


def _chunks(
    frames: list[tuple[MessageHandler, list[Frame]]],
) -> list[list[tuple[MessageHandler, list[Frame]]]]:
    """The round's messages in script calls of about `FRAMES_PER_CALL` frames (a message is never split)."""
    chunks: list[list[tuple[MessageHandler, list[Frame]]]] = []
    size = 0
    for item in frames:
        if not chunks or size + len(item[1]) > FRAMES_PER_CALL:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += len(item[1])
    return chunks
