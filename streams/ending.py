"""Where a message stands from the producer's side, and ending one whose producer is gone.

A message has ended for its producer once `E(M)` holds a terminal event
(`message-finish` or `error`), even before a worker wrote `R(M)`. A message
whose producer died mid-stream (a killed job, an aborted job that never
started) is ended by appending an `error` event after its last one, in one
script, so the check and the write can't be split by a late producer: a
zombie's next `XADD` of the same id is then refused, and anything after the
terminal event is never read.
"""

from __future__ import annotations

import time
from enum import StrEnum

import orjson
from redis.asyncio import Redis

from lcstream.streams.events import EVENT_FIELD, TERMINAL_EVENTS, now_ms
from lcstream.streams.keys import Keyspace, MessageKeys, default_keyspace
from lcstream.streams.reader import read_outcome

# KEYS: E(M), D(k). ARGV: 1 error event JSON, 2 its time ms, 3 "1" to announce M when it has no
# events, 4.. the dispatch fields. Returns the state it found: absent, open (then ended it), completed
# or failed (left alone).
_END_LUA = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last == 0 then
  if ARGV[3] ~= '1' then return 'absent' end
  redis.call('XADD', KEYS[1], '0-1', 'e', ARGV[1], 't', ARGV[2])
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
  return 'absent'
end
local id, fields = last[1][1], last[1][2]
for i = 1, #fields, 2 do
  if fields[i] == 'e' then
    local ok, event = pcall(cjson.decode, fields[i + 1])
    if ok and type(event) == 'table' then
      if event.event == 'message-finish' then return 'completed' end
      if event.event == 'error' then return 'failed' end
    end
  end
end
local ms, seq = string.match(id, '^(%d+)-(%d+)$')
local next_id = '*'
if ms == '0' then next_id = '0-' .. (tonumber(seq) + 1) end
redis.call('XADD', KEYS[1], next_id, 'e', ARGV[1], 't', ARGV[2])
return 'open'
"""


class MessageState(StrEnum):
    """A message as its producer sees it."""

    ABSENT = "absent"  # no event (never produced, or expired)
    OPEN = "open"  # events, none terminal yet
    COMPLETED = "completed"  # ended with `message-finish`
    FAILED = "failed"  # ended with `error` (or failed by a worker)

    @property
    def ended(self) -> bool:
        """Whether the message has its terminal event (or outcome)."""
        return self in (MessageState.COMPLETED, MessageState.FAILED)


def _state_of_event(raw: bytes | None) -> MessageState:
    try:
        kind = orjson.loads(raw or b"").get("event")
    except (orjson.JSONDecodeError, AttributeError):
        return MessageState.OPEN
    if kind not in TERMINAL_EVENTS:
        return MessageState.OPEN
    return MessageState.COMPLETED if kind == "message-finish" else MessageState.FAILED


async def message_state(redis: Redis, message_id: str, keyspace: Keyspace | None = None) -> MessageState:
    """Whether M has no events, is open, or ended (by its last event, or by a stored outcome)."""
    space = keyspace or default_keyspace()
    outcome = await read_outcome(redis, message_id, space)
    if outcome is not None:
        return MessageState.COMPLETED if outcome.status == "completed" else MessageState.FAILED
    last = await redis.xrevrange(space.message(message_id).events, count=1)
    if not last:
        return MessageState.ABSENT
    return _state_of_event(last[0][1].get(EVENT_FIELD))


async def end_message(
    redis: Redis,
    message_id: str,
    *,
    message: str,
    code: str,
    keyspace: Keyspace | None = None,
    announce: bool = False,
) -> MessageState:
    """Append an `error` event to M unless it has ended; return the state it was found in.

    With `announce`, a message without events is created with the error as its
    only event and announced, so a client already holding M sees it end (an
    aborted job that never started). Without it, such a message is left alone.
    """
    keys = (keyspace or default_keyspace()).message(message_id)
    event = orjson.dumps({"event": "error", "message": message, "code": code}).decode()
    flag = "1" if announce else "0"
    found = await redis.eval(  # type: ignore[misc]  # redis-py types it as maybe not awaitable
        _END_LUA, 2, keys.events, keys.dispatch, event, str(now_ms()), flag, "m", message_id
    )
    return MessageState(found.decode() if isinstance(found, bytes) else str(found))


async def wait_until_ended(
    redis: Redis, message_id: str, timeout_s: float, *, keyspace: Keyspace | None = None, block_ms: int = 500
) -> MessageState:
    """Wait up to `timeout_s` for M's terminal event (or outcome); return the state it is in then."""
    space = keyspace or default_keyspace()
    keys: MessageKeys = space.message(message_id)
    deadline = time.monotonic() + timeout_s
    state = await message_state(redis, message_id, space)
    last = await redis.xrevrange(keys.events, count=1)
    cursor: bytes = last[0][0] if last else b"0-0"
    while not state.ended:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            break
        reply = await redis.xread({keys.events: cursor}, block=max(1, min(block_ms, remaining_ms)))
        for _, entries in reply or ():
            for entry_id, fields in entries:
                cursor = entry_id
                state = _state_of_event(fields.get(EVENT_FIELD))
                if state.ended:
                    return state
        if not reply:  # quiet: a worker may have failed it for a reason outside its events
            state = await message_state(redis, message_id, space)
    return state
