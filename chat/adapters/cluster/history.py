"""Room history in the Redis Cluster: one stream per room, gap-free sequence numbers.

All keys of a room share the hash tag ``{r:<room>}``, so one Lua script can, atomically:
return the first result of a retried send (idempotency record), or take the room's next
``seq``, stamp the master's clock, append the message under the stream id ``<seq>-0`` and
remember it for retries.  Scripts on one master run one at a time, so when seq N exists, every
seq below it exists too: a reader never sees a hole that a later read would fill.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Any

import msgspec

from chat import keys
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.scripts import Script
from chat.errors import ChatError, forbidden, not_found
from chat.models import Message, UserRef, is_dm_room, with_state

IDEMPOTENCY_MS = 10 * 60 * 1000
#: The append script's first value for a DM its gate refused (then the refusal's code).
GATED = 2
#: Seqs kept per user and room in ``own`` and ``mention`` sets: above the count cap (100), so
#: mention counts are exact up to it.
OWN_MAX = 128
#: Members found per ``@word`` (names are not unique), and mentions per message in all.
NAMESAKES_MAX = 20
MENTIONS_MAX = 50

# Mentions: KEYS[6] the roster, KEYS[7] the members; ARGV[7] the mention keys' prefix,
# ARGV[8] the sender, ARGV[9] 'members' (keep members only) or 'any' (a DM: decided by the
# caller), ARGV[10] how many explicit ids follow, then the ids, then the lowercased @words.
# A word finds members by the roster's entries ``<0|1><lowercased name>\0<id>\0<name>``.
# Returns the ``,"mentions":[...]`` of the message JSON, or ''.
MENTIONS = """
local function mentions(seq)
  local found, ids = {}, {}
  local function mention(id)
    if id == ARGV[8] or found[id] or #ids >= MENTIONS_MAX then return end
    if ARGV[9] == 'members' and redis.call('SISMEMBER', KEYS[7], id) == 0 then return end
    found[id] = true
    ids[#ids + 1] = id
  end
  local k = tonumber(ARGV[10])
  for i = 11, 10 + k do mention(ARGV[i]) end
  for i = 11 + k, #ARGV do
    for _, flag in ipairs({'0', '1'}) do
      local low = flag .. ARGV[i] .. '\\0'
      local hits = redis.call('ZRANGEBYLEX', KEYS[6], '[' .. low, '(' .. flag .. ARGV[i] .. '\\1',
        'LIMIT', 0, NAMESAKES_MAX)
      for _, entry in ipairs(hits) do
        local rest = string.sub(entry, #low + 1)
        mention(string.sub(rest, 1, string.find(rest, '\\0', 1, true) - 1))
      end
    end
  end
  if #ids == 0 then return '' end
  for _, id in ipairs(ids) do
    redis.call('ZADD', ARGV[7] .. id, seq, seq)
    redis.call('ZREMRANGEBYRANK', ARGV[7] .. id, 0, -OWN_MAX - 1)
  end
  return ',"mentions":["' .. table.concat(ids, '","') .. '"]'
end
"""

# KEYS[8]: the DM gate (``keys.room_gate_key``; never present for other rooms).  Checked
# before the retry record, so that a retry after a block is refused as a new send would be.
APPEND = (
    MENTIONS
    + """
if redis.call('EXISTS', KEYS[8]) == 1 then
  if redis.call('HEXISTS', KEYS[8], 'x') == 1 then return {2, 'no_user'} end
  return {2, 'forbidden'}
end
local prev = redis.call('GET', KEYS[3])
if prev then
  -- A write, so that a WAIT after this script covers the original message too.
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
  return {0, prev}
end
local seq = redis.call('INCR', KEYS[1])
local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
-- Unread counting (reads.py): the plain message count after this one, this sender's own
-- seqs and each mentioned member's seqs (the newest OWN_MAX of each).
local n = redis.call('INCR', KEYS[4])
local mentioned = mentions(seq)
redis.call('ZADD', KEYS[5], seq, seq)
redis.call('ZREMRANGEBYRANK', KEYS[5], 0, -OWN_MAX - 1)
local msg = ARGV[1] .. seq .. ',"id":"' .. seq .. ARGV[2] .. ts .. ARGV[3] .. mentioned .. '}'
local maxlen = tonumber(ARGV[5])
if maxlen > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, seq .. '-0', 'm', msg, 't', ts, 'n', n)
else
  redis.call('XADD', KEYS[2], seq .. '-0', 'm', msg, 't', ts, 'n', n)
end
redis.call('SET', KEYS[3], msg, 'PX', ARGV[4])
local max_age = tonumber(ARGV[6])
if max_age > 0 and seq % 64 == 0 then
  -- Age retention, amortised over 64 appends: drop the expired among the oldest entries.
  local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 256)
  for _, entry in ipairs(oldest) do
    if tonumber(entry[2][4]) >= ts - max_age then
      redis.call('XTRIM', KEYS[2], 'MINID', entry[1])
      break
    end
  end
end
return {1, msg}
"""
)
APPEND = (
    APPEND.replace("OWN_MAX", str(OWN_MAX))
    .replace("NAMESAKES_MAX", str(NAMESAKES_MAX))
    .replace("MENTIONS_MAX", str(MENTIONS_MAX))
)

READ = """
local entries = redis.call(ARGV[1], KEYS[1], ARGV[2], ARGV[3], 'COUNT', ARGV[4])
-- Whose state each entry needs: a plain message its own, an edit its target's (a deleted
-- target hides the edit's text too); deletes and reactions none.
local fields, out = {}, {}
for i, entry in ipairs(entries) do
  local f, m, kind, target = entry[2], nil, nil, nil
  for j = 1, #f, 2 do
    if f[j] == 'm' then m = f[j + 1] elseif f[j] == 'k' then kind = f[j + 1]
    elseif f[j] == 'g' then target = f[j + 1] end
  end
  local seq = string.match(entry[1], '^(%d+)')
  out[i] = {m, '', {}}
  if not kind then fields[i] = seq elseif kind == 'edit' then fields[i] = target end
end
local wanted, where = {}, {}
for i = 1, #entries do
  if fields[i] then wanted[#wanted + 1] = fields[i]; where[#wanted] = i end
end
if #wanted == 0 then return out end
local states = redis.call('HMGET', KEYS[2], unpack(wanted))
for w, state in ipairs(states) do
  if state then
    local i = where[w]
    out[i][2] = state
    if ARGV[5] ~= '' and fields[i] == string.match(entries[i][1], '^(%d+)') then
      -- The caller's own reactions: one SISMEMBER per emoji the message has (at most 20).
      local ok, decoded = pcall(cjson.decode, state)
      if ok and type(decoded.reactions) == 'table' then
        local mine = {}
        for emoji, _ in pairs(decoded.reactions) do
          local member = emoji .. '\\n' .. ARGV[5]
          if redis.call('SISMEMBER', ARGV[6] .. fields[i], member) == 1 then
            mine[#mine + 1] = emoji
          end
        end
        out[i][3] = mine
      end
    end
  end
end
return out
"""

_encode = msgspec.json.Encoder().encode
_decode_message = msgspec.json.Decoder(Message).decode
_decode_state = msgspec.json.Decoder(dict[str, Any]).decode


class ClusterHistory:
    def __init__(
        self,
        cluster: Cluster,
        *,
        max_len: int = 10_000,
        max_age_s: float = 0,
    ) -> None:
        self._cluster = cluster
        self._append = Script(cluster, APPEND)
        self._read_script = Script(cluster, READ)
        self._max_len = max_len
        self._max_age_ms = int(max_age_s * 1000)

    async def append(
        self,
        message_id: str,
        room: str,
        sender: UserRef,
        text: str,
        cid: str | None,
        token: str,
        *,
        mentions: Sequence[str] = (),
        names: Sequence[str] = (),
    ) -> tuple[Message, bool]:
        """Store a message; return it and whether it is new (False: a retry of ``token``).

        Acknowledged only once a replica has it where the master has replicas, so an acked
        message survives the loss of its master.
        """
        # The id is "<seq>.<message_id>" (a message is found by its id with one XRANGE).
        head = b'{"room":' + _encode(room) + b',"seq":'
        tail = b',"from":' + _encode(sender) + b',"text":' + _encode(text)
        tail += b',"cid":' + _encode(cid) if cid is not None else b""
        script_keys = (
            keys.room_seq_key(room),
            keys.room_log_key(room),
            keys.room_idem_key(room, sender.id, token),
            *_counter_keys(room, sender.id),
            keys.room_gate_key(room),
        )
        middle = b"." + message_id.encode() + b'","ts":'
        args = (head, middle, tail, IDEMPOTENCY_MS, self._max_len, self._max_age_ms)
        args += _mention_args(room, sender.id, mentions, names)
        created, raw = await self._append(script_keys, args, durable=True, what="append")
        if created == GATED:
            raise refusal(raw.decode())
        return _decode_message(raw), bool(created)

    async def last_seq(self, room: str) -> int:
        key = keys.room_seq_key(room)
        return int(await self._cluster.send(key, "GET", key, what="last_seq") or 0)

    async def last_seqs(self, rooms: Collection[str]) -> dict[str, int]:
        """Many rooms' last seq, sent together (one round trip per master)."""
        names = list(dict.fromkeys(rooms))
        values = await asyncio.gather(
            *(self._cluster.send(keys.room_seq_key(r), "GET", keys.room_seq_key(r)) for r in names)
        )
        return {room: int(v or 0) for room, v in zip(names, values, strict=True)}

    async def page(
        self,
        room: str,
        *,
        before: int | None,
        after: int | None,
        limit: int,
        viewer: str | None = None,
    ) -> tuple[list[Message], bool]:
        """Entries ascending by seq, plain messages in their current state (``with_state``;
        ``my_reactions`` those of ``viewer``).  ``after`` (with or without ``before``): the
        first ``limit`` above it; only ``before``: the last ``limit`` below it; neither: the
        newest.  ``has_more``: more entries exist beyond the page in the direction of paging."""
        if before == 0:  # nothing is below seq 1 (and "(0-0" is no end Redis takes)
            return [], False
        upper = f"({before}-0" if before is not None else "+"
        if after is not None:
            entries = await self._read(room, "XRANGE", f"({after}-0", upper, limit + 1, viewer)
            return entries[:limit], len(entries) > limit
        entries = await self._read(room, "XREVRANGE", upper, "-", limit + 1, viewer)
        return entries[:limit][::-1], len(entries) > limit

    async def between(
        self, room: str, after: int, upto: int, limit: int, viewer: str | None = None
    ) -> list[Message]:
        """Entries with ``after < seq <= upto``, ascending, at most ``limit`` (as ``page``)."""
        if upto <= after:
            return []
        return await self._read(room, "XRANGE", f"({after}-0", f"{upto}-0", limit, viewer)

    async def _read(
        self, room: str, command: str, start: str, end: str, count: int, viewer: str | None
    ) -> list[Message]:
        """One script: the entries and the state of the messages they are or name."""
        script_keys = (keys.room_log_key(room), keys.room_state_key(room))
        args = (command, start, end, count, viewer or "", keys.room_reactors_prefix(room))
        found = await self._read_script(script_keys, args, what="history")
        return [_with_state(entry) for entry in found or ()]


def _counter_keys(room: str, sender: str) -> tuple[str, ...]:
    """The keys of unread counting and mentions an append writes (see ``MENTIONS``)."""
    return (
        keys.room_mcount_key(room),
        keys.room_own_key(room, sender),
        keys.room_roster_key(room),
        keys.room_members_key(room),
    )


def _mention_args(
    room: str, sender: str, mentions: Sequence[str], names: Sequence[str]
) -> tuple[Any, ...]:
    # Hazard: the mentioned members' keys are found inside the script (by @name), so they are
    # spelled there from this prefix (same hash tag as the room's other keys: same slot).
    prefix = keys.room_mention_key(room, "")
    scope = "any" if is_dm_room(room) else "members"
    return (prefix, sender, scope, len(mentions), *mentions, *names)


def _with_state(entry: Any) -> Message:
    """``[message JSON, state JSON or "", the viewer's emoji]`` from the read script."""
    raw, state, mine = entry
    message = _decode_message(raw)
    if not state:
        return message
    return with_state(message, _decode_state(state), [e.decode() for e in mine])


def refusal(code: str) -> ChatError:
    """The error of a DM refused by its gate: a plain ``forbidden`` for a block (it tells the
    sender no more than any refusal), ``no_user`` when an account of the two was deleted."""
    return not_found("no_user", "no such user") if code == "no_user" else forbidden()
