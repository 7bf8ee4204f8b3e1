"""The fenced script that writes a batch: frames to `O(M)` and `L(M)`, and each ended message's commit.

Per message, in one atomic call:

1. The fence: this consumer must still own the dispatch entry (`XPENDING`
   names it), else nothing is written (LOST).
2. An ending first meets its checks: an outcome already in `R(M)` means an
   earlier delivery committed (only ack: ALREADY_COMMITTED); a key of another
   type at `R(M)` or `O(M)` (WRONG_TYPE); an entry in `E(M)` after the
   terminal event (AFTER_TERMINAL). The worker then ends the message failed
   in another call.
3. Frames are appended at ids `0-seq`; one that exists (a rebuilt message)
   is skipped and not published again. Any other error (`OOM` under
   `noeviction`, `READONLY` on a replica) stops the message: REFUSED, the
   worker writes it again later. Redis refuses only a script's first write
   (once a script wrote, it may go on), so a refused message wrote nothing.
4. A commit writes the dead letter (when `P:dead` can be in the call: not on
   a cluster, where it lives in another slot), `R(M)`, the notice, the TTLs,
   then acks. An ending that tolerates wrong types (mode 2) writes only to
   keys of the right type.

KEYS: D(k), [P:dead], then per message O(M), R(M), E(M).
ARGV: consumer, group, notices channel, retention s, live publish command, now ms, dead-letters-in-call
(1/0), dead-letter cap; then per message: dispatch id, L(M), first seq, frame count n, mode (0 frames,
1 ending, 2 ending of a message with a wrong-typed key), terminal entry id (or ''), the n frame bodies,
and for an ending: outcome, notice, dead reason (or ''), dead error, deliveries, message id.
Returns one `{verdict, detail}` per message (`worker.batch.Verdict`).
"""

from __future__ import annotations

COMMIT_LUA = """
local dispatch, consumer, group, notices = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local retention, live_publish, now_ms, dead_cap = ARGV[4], ARGV[5], ARGV[6], ARGV[8]
local dead = ARGV[7] == '1' and KEYS[2] or nil
local LOST, WRITTEN, COMMITTED, REFUSED, WRONG_TYPE, AFTER_TERMINAL = 0, 1, 2, 3, 4, 5
local EXISTS = 'ERR The ID specified in XADD is equal or smaller'

local function refused(reply)
  return type(reply) == 'table' and reply.err or nil
end

local function kind(key)
  return redis.call('TYPE', key).ok
end

local function holds_outcome(key)
  local ok, value = pcall(cjson.decode, redis.call('GET', key))
  return ok and type(value) == 'table' and (value.status == 'completed' or value.status == 'failed')
end

-- Appends frames first.. from ARGV[at]; returns a verdict and Redis's error if one was refused.
local function append(out, live, first, n, at)
  for i = 0, n - 1 do
    local body, seq = ARGV[at + i], first + i
    local err = refused(redis.pcall('XADD', out, '0-' .. seq, 'f', body))
    if not err then
      redis.call(live_publish, live, '{"seq":' .. seq .. ',' .. string.sub(body, 2))
    elseif string.sub(err, 1, #EXISTS) ~= EXISTS then
      return string.find(err, 'WRONGTYPE', 1, true) and WRONG_TYPE or REFUSED, err
    end
  end
end

-- Why an ending can't be committed as it is, if it can't.
local function check_ending(out, result, events, terminal)
  local result_kind, out_kind = kind(result), kind(out)
  if result_kind ~= 'none' then
    return WRONG_TYPE, result .. ' holds a ' .. result_kind .. ' that is not an outcome'
  end
  if out_kind ~= 'none' and out_kind ~= 'stream' then
    return WRONG_TYPE, out .. ' holds a ' .. out_kind .. ', not a stream'
  end
  if terminal ~= '' then
    local last = redis.pcall('XREVRANGE', events, '+', '-', 'COUNT', 1)
    if not refused(last) and #last > 0 and last[1][1] ~= terminal then
      return AFTER_TERMINAL, events .. ' holds ' .. last[1][1] .. ' after the terminal event ' .. terminal
    end
  end
end

local function commit(out, result, events, id, at, tolerant)
  local outcome, notice, reason, error = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  local deliveries, message = ARGV[at + 4], ARGV[at + 5]
  if dead and reason ~= '' then
    local err = refused(redis.pcall('XADD', dead, 'MAXLEN', '~', dead_cap, '*', 'm', message,
      'reason', reason, 'error', error, 'deliveries', deliveries, 'dispatch_id', id, 't', now_ms))
    if err then return REFUSED, err end
  end
  if not tolerant or kind(result) == 'none' then
    local err = refused(redis.pcall('SET', result, outcome, 'EX', retention))
    if err then return REFUSED, err end
  end
  for _, key in ipairs({out, events}) do
    if not tolerant or kind(key) == 'stream' then
      local err = refused(redis.pcall('EXPIRE', key, retention))
      if err then return REFUSED, err end
    end
  end
  local err = refused(redis.pcall('XACK', dispatch, group, id))
  if err then return REFUSED, err end
  redis.call('PUBLISH', notices, notice)
  return WRITTEN
end

local verdicts, at, k = {}, 9, dead and 3 or 2
while at <= #ARGV do
  local id, live, mode, terminal = ARGV[at], ARGV[at + 1], ARGV[at + 4], ARGV[at + 5]
  local first, n = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local out, result, events, bodies = KEYS[k], KEYS[k + 1], KEYS[k + 2], at + 6
  local verdict, detail = WRITTEN, nil
  local pending = redis.call('XPENDING', dispatch, group, id, id, 1)
  if #pending == 0 or pending[1][2] ~= consumer then
    verdict = LOST
  elseif mode ~= '0' and kind(result) == 'string' and holds_outcome(result) then
    detail = refused(redis.pcall('XACK', dispatch, group, id))
    verdict = detail and REFUSED or COMMITTED
  else
    if mode == '1' then
      verdict, detail = check_ending(out, result, events, terminal)
      verdict = verdict or WRITTEN
    end
    if verdict == WRITTEN and (mode ~= '2' or kind(out) == 'stream' or kind(out) == 'none') then
      verdict, detail = append(out, live, first, n, bodies)
      verdict = verdict or WRITTEN
    end
    if verdict == WRITTEN and mode ~= '0' then
      verdict, detail = commit(out, result, events, id, bodies + n, mode == '2')
    end
  end
  verdicts[#verdicts + 1] = {verdict, detail or ''}
  at, k = bodies + n + (mode ~= '0' and 6 or 0), k + 3
end
return verdicts
"""
