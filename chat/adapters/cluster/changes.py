"""Changes of messages in the Redis Cluster: edits, deletes and reactions, each appended to the
room's stream as an entry of its own (with its own seq) by one Lua script on the room's slot.

The script checks a DM's gate (a block refuses edits and reactions, not deletes), the target
(found by id with one XRANGE of ``<seq>-0``; a change entry is not a message), the rules
(author, deleted, edit window, reaction bounds), then takes the room's next seq, appends the
change entry and rewrites the target's state
(``{r:<room>}:state``) and its reactors (``{r:<room>}:rx:<seq>``), all at once: a reader
never sees a change entry without the state it caused, or the other way round.  A refusal
writes nothing.  Like a send, it is acknowledged only once a replica has it, and a repeated
token answers the first result (the idempotency record of sends, ``room_idem_key``).
"""

from __future__ import annotations

import msgspec

from chat import keys
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.history import IDEMPOTENCY_MS
from chat.adapters.cluster.scripts import Script
from chat.errors import forbidden, refusal
from chat.models import Message
from chat.ports import ChangeRequest

# KEYS: seq, log, idem, state, reactors of the target, mcount, the DM gate
# (``keys.room_gate_key``; never present for other rooms).
# ARGV: kind, target id, target seq, user, JSON head, middle and tail, idempotency ms, maxlen,
# max age ms, edit window ms, text or emoji, on (1/0), most emoji, most reactions per user,
# the reactor keys' prefix (the script completes it with the seqs of trimmed messages), the
# caller moderates the room (1/0: a delete of anyone's message).
CHANGE = """
-- A block (any 'b:' field) closes a DM to edits and reactions both ways, retries included;
-- deleting one's own message stays possible.  A deleted account ('x') alone does not: its
-- DMs stay readable, and nobody is left to be reached by a change.
local gate = redis.call('HLEN', KEYS[7])
if gate > 0 and ARGV[1] ~= 'delete' and gate > redis.call('HEXISTS', KEYS[7], 'x') then
  return {-1, 'blocked'}
end
local prev = redis.call('GET', KEYS[3])
if prev then
  redis.call('PEXPIRE', KEYS[3], ARGV[8])  -- a write: the WAIT after it covers the original
  return {0, prev}
end
local tseq, kind, user = ARGV[3], ARGV[1], ARGV[4]
local found = redis.call('XRANGE', KEYS[2], tseq .. '-0', tseq .. '-0')
if #found == 0 then return {-1, 'no_message'} end
local f, raw = found[1][2], nil
for j = 1, #f, 2 do
  if f[j] == 'k' then return {-1, 'no_message'} end  -- a change entry is no message
  if f[j] == 'm' then raw = f[j + 1] end
end
local target = cjson.decode(raw)
if target.id ~= ARGV[2] then return {-1, 'no_message'} end
-- A room admin or owner may delete anyone's message (ARGV[17]); the entry says so.
local by_moderator = kind == 'delete' and target.from.id ~= user and ARGV[17] == '1'
if kind ~= 'react' and target.from.id ~= user and not by_moderator then
  return {-1, 'forbidden'}
end
local stored = redis.call('HGET', KEYS[4], tseq)
local state = stored and cjson.decode(stored) or {}
if state.deleted then return {-1, 'message_deleted'} end
local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if kind == 'edit' then
  local window = tonumber(ARGV[11])
  if window > 0 and ts - target.ts > window then return {-1, 'edit_window_closed'} end
  state.text, state.edited_ts = ARGV[12], ts
elseif kind == 'delete' then
  state = {deleted = true}  -- a tombstone: no text, no reactions
  redis.call('DEL', KEYS[5])
else
  local emoji, on = ARGV[12], ARGV[13] == '1'
  local member = emoji .. '\\n' .. user
  if (redis.call('SISMEMBER', KEYS[5], member) == 1) == on then return {2} end
  local counts = state.reactions or {}
  if on then
    local distinct, mine = 0, 0
    for other, _ in pairs(counts) do
      distinct = distinct + 1
      if redis.call('SISMEMBER', KEYS[5], other .. '\\n' .. user) == 1 then mine = mine + 1 end
    end
    if (not counts[emoji] and distinct >= tonumber(ARGV[14])) or mine >= tonumber(ARGV[15]) then
      return {-1, 'too_many_reactions'}
    end
    redis.call('SADD', KEYS[5], member)
    counts[emoji] = (counts[emoji] or 0) + 1
  else
    redis.call('SREM', KEYS[5], member)
    counts[emoji] = (counts[emoji] or 1) - 1
    if counts[emoji] <= 0 then counts[emoji] = nil end
  end
  if next(counts) then state.reactions = counts else state.reactions = nil end
end
local seq = redis.call('INCR', KEYS[1])
state.v = seq
redis.call('HSET', KEYS[4], tseq, cjson.encode(state))
local msg = ARGV[5] .. seq .. ',"id":"' .. seq .. ARGV[6] .. ts .. ARGV[7]
if by_moderator then msg = string.sub(msg, 1, -2) .. ',"by_moderator":true}' end
local n = redis.call('GET', KEYS[6]) or '0'
-- 't' second: age retention reads it there.  'k' and 'g' mark a change and its target.
local entry = {seq .. '-0', 'm', msg, 't', ts, 'n', n, 'k', kind, 'g', tseq}
local maxlen = tonumber(ARGV[9])
if maxlen > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, unpack(entry))
else
  redis.call('XADD', KEYS[2], unpack(entry))
end
redis.call('SET', KEYS[3], msg, 'PX', ARGV[8])
local max_age = tonumber(ARGV[10])
if max_age > 0 and seq % 64 == 0 then
  local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 256)
  for _, old in ipairs(oldest) do
    if tonumber(old[2][4]) >= ts - max_age then
      redis.call('XTRIM', KEYS[2], 'MINID', old[1])
      break
    end
  end
end
-- Forget the state and reactors of messages retention trimmed away, once 64 more seqs left
-- the stream since the last time (field 'floor': the first seq kept then).
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
local kept = tonumber(string.match(first[1], '^(%d+)'))
if kept >= tonumber(redis.call('HGET', KEYS[4], 'floor') or '1') + 64 then
  for _, field in ipairs(redis.call('HKEYS', KEYS[4])) do
    local old = tonumber(field)
    if old and old < kept then
      redis.call('HDEL', KEYS[4], field)
      redis.call('DEL', ARGV[16] .. field)
    end
  end
  redis.call('HSET', KEYS[4], 'floor', kept)
end
return {1, msg}
"""

_encode = msgspec.json.Encoder().encode
_decode_message = msgspec.json.Decoder(Message).decode


class ClusterChanges:
    def __init__(self, cluster: Cluster, *, max_len: int = 10_000, max_age_s: float = 0) -> None:
        self._script = Script(cluster, CHANGE)
        self._max_len = max_len
        self._max_age_ms = int(max_age_s * 1000)

    async def change(self, req: ChangeRequest) -> tuple[Message | None, bool]:
        """Append the change; ``(entry, True)``, ``(first entry, False)`` for a repeated
        token, ``(None, False)`` for a reaction that was already on (or off).  A refused
        change raises its ``ChatError`` (``chat/errors.py`` ``REFUSALS``) and stores nothing."""
        room = req.room
        script_keys = (
            keys.room_seq_key(room),
            keys.room_log_key(room),
            keys.room_idem_key(room, req.sender.id, req.token),
            keys.room_state_key(room),
            keys.room_reactors_key(room, req.target_seq),
            keys.room_mcount_key(room),
            keys.room_gate_key(room),
        )
        head = b'{"room":' + _encode(room) + b',"seq":'
        middle = b"." + req.random.encode() + b'","ts":'
        args = (
            req.kind, req.target, req.target_seq, req.sender.id, head, middle, _tail(req),
            IDEMPOTENCY_MS, self._max_len, self._max_age_ms, req.edit_window_ms,
            (req.text if req.kind == "edit" else req.emoji) or "", int(req.on),
            req.max_emoji, req.max_per_user, keys.room_reactors_prefix(room), int(req.moderator),
        )  # fmt: skip
        answer = await self._script(script_keys, args, durable=True, what=req.kind)
        status = int(answer[0])
        if status < 0:
            code = answer[1].decode()
            # A block is told as a plain "forbidden", the same as a DM refused by it.
            raise forbidden() if code == "blocked" else refusal(code)
        if status == 2:
            return None, False
        return _decode_message(answer[1]), status == 1


def _tail(req: ChangeRequest) -> bytes:
    tail = b',"from":' + _encode(req.sender) + b',"kind":' + _encode(req.kind)
    tail += b',"target":' + _encode(req.target) + b',"target_seq":' + _encode(req.target_seq)
    if req.kind == "edit":
        tail += b',"text":' + _encode(req.text)
    elif req.kind == "react":
        tail += b',"emoji":' + _encode(req.emoji) + b',"on":' + _encode(req.on)
    return tail + (b',"cid":' + _encode(req.cid) if req.cid is not None else b"") + b"}"
