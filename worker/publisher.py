"""Writing frames to `O(M)`/`L(M)` and committing outcomes, one pipeline per batch.

Frames have explicit ids `0-seq`: a rebuilt message's frames that already
exist are refused by Redis, so `O(M)` never holds a duplicate. The outcome is
committed by one script, fenced on this consumer still owning the dispatch
entry: a worker that lost its claim can write neither a final nor an ack.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError
from redis.typing import EncodableT, FieldT

from streams.events import now_ms
from streams.frames import Frame
from streams.keys import Keyspace
from worker.handler import MessageHandler

# KEYS: D(k), R(M), O(M), E(M)
# ARGV: dispatch id, consumer, group, outcome, last seq, last frame body,
#       L(M), last frame live payload, notices channel, notice, retention s
COMMIT_LUA = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[3], ARGV[1], ARGV[1], 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then return 0 end
if redis.call('SET', KEYS[2], ARGV[4], 'NX', 'EX', ARGV[11]) then
  redis.pcall('XADD', KEYS[3], '0-' .. ARGV[5], 'f', ARGV[6])
  redis.call('PUBLISH', ARGV[7], ARGV[8])
  redis.call('PUBLISH', ARGV[9], ARGV[10])
end
redis.call('EXPIRE', KEYS[3], ARGV[11])
redis.call('EXPIRE', KEYS[4], ARGV[11])
redis.call('XACK', KEYS[1], ARGV[3], ARGV[1])
return 1
"""

_DUPLICATE_ID = "equal or smaller than the target stream top item"
DEAD_LETTER_MAX_LEN = 100_000


@dataclass(slots=True)
class Batch:
    """What one round of reading produced: frames per message, and who opened or ended."""

    frames: list[tuple[MessageHandler, list[Frame]]] = field(default_factory=list)
    started: list[MessageHandler] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.frames or self.started)


class FramePublisher:
    """Turns a `Batch` into Redis writes: one pipeline, then the fenced commits' verdicts."""

    def __init__(
        self, redis: Redis, keyspace: Keyspace, *, group: str, consumer: str, retention_s: int
    ) -> None:
        self._redis = redis
        self._keyspace = keyspace
        self._group = group
        self._consumer = consumer
        self._retention_s = retention_s
        self._commit_sha: str | None = None

    async def publish(self, batch: Batch) -> dict[str, bool]:
        """Write the batch; return, per message that ended, whether its commit went through."""
        try:
            return await self._publish_once(batch)
        except NoScriptError:
            self._commit_sha = None  # Redis restarted or failed over: load the script again
            return await self._publish_once(batch)

    async def _publish_once(self, batch: Batch) -> dict[str, bool]:
        if self._commit_sha is None:
            self._commit_sha = await self._redis.script_load(COMMIT_LUA)
        pipe = self._redis.pipeline(transaction=False)
        notices = self._keyspace.notices
        for handler in batch.started:
            pipe.publish(notices, _notice(handler.message_id, "started"))
        ended: list[tuple[MessageHandler, Frame]] = []
        for handler, frames in batch.frames:
            ends = handler.outcome is not None
            for frame in frames[:-1] if ends else frames:
                pipe.xadd(handler.keys.out, {b"f": frame.body_json()}, id=f"0-{frame.seq}")
                pipe.publish(handler.keys.live, frame.live_json())
            if ends:
                ended.append((handler, frames[-1]))
                if (poison := handler.poison) is not None:
                    fields = _dead_letter(
                        handler.message_id, poison.reason, str(poison),
                        deliveries=handler.deliveries, dispatch_id=handler.delivery_id,
                    )  # fmt: skip
                    pipe.xadd(self._keyspace.dead, fields, maxlen=DEAD_LETTER_MAX_LEN)
        # Commits go last, so their replies are the tail of the pipeline's.
        for handler, last in ended:
            keys, outcome = handler.keys, handler.outcome
            assert outcome is not None
            pipe.execute_command(
                "EVALSHA", self._commit_sha, 4, keys.dispatch, keys.result, keys.out, keys.events,
                handler.delivery_id, self._consumer, self._group, outcome.to_json(),
                last.seq, last.body_json(), keys.live, last.live_json(),
                notices, _notice(handler.message_id, outcome.status), self._retention_s,
            )  # fmt: skip
        replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, NoScriptError):
                raise reply
            if isinstance(reply, ResponseError) and _DUPLICATE_ID not in str(reply):
                raise reply
        verdicts = replies[len(replies) - len(ended) :]
        return {h.message_id: v == 1 for (h, _), v in zip(ended, verdicts, strict=True)}

    async def reject(self, dispatch: str, entries: list[tuple[bytes, str, str, str]]) -> None:
        """Dead-letter and ack dispatch entries that name no usable message (id, m, reason, error)."""
        pipe = self._redis.pipeline(transaction=False)
        for delivery_id, raw_id, reason, error in entries:
            fields = _dead_letter(raw_id, reason, error, deliveries=1, dispatch_id=delivery_id)
            pipe.xadd(self._keyspace.dead, fields, maxlen=DEAD_LETTER_MAX_LEN)
            pipe.xack(dispatch, self._group, delivery_id)
        await pipe.execute()


def _notice(message_id: str, status: str) -> bytes:
    return orjson.dumps({"message_id": message_id, "status": status})


def _dead_letter(
    message_id: str, reason: str, error: str, *, deliveries: int, dispatch_id: bytes
) -> dict[FieldT, EncodableT]:
    """A `P:dead` entry: what failed, why, and where it came from."""
    return {
        b"m": message_id,
        b"reason": reason,
        b"error": error,
        b"deliveries": deliveries,
        b"dispatch_id": dispatch_id,
        b"t": now_ms(),
    }
