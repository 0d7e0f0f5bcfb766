"""Roles, bans, mutes and moderation entries in the Redis Cluster (``RoleStore``).

Per room (slot ``{r:<room>}``): ``roles`` (user -> ``owner``/``admin``; absent: member),
``bans`` and ``mutes`` (user -> expiry in ms, 0: until lifted).  One Lua script checks an
action against the stored roles, membership and restrictions, applies it and appends its
``moderation`` entry with the room's next seq, at once: two admins racing (a transfer against a
kick) cannot both pass a rule, and a refusal writes nothing.  Like a send, it is acknowledged
only once a replica has it.

Rooms created before roles existed have no ``roles`` hash: their creator (``created_by`` in
the room record) counts as owner, and is written down as such by the first action that passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

import msgspec

from chat import keys
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.scripts import Script
from chat.errors import moderation_refusal
from chat.models import Message
from chat.ports import ModerationRequest

# KEYS: seq, log, roles, bans, mutes, members, meta, mcount, the request's record.
# ARGV: action, actor, target, service admin (1/0), JSON head, middle, tail (without the
# closing brace), duration ms, role, maxlen.
# Returns {1, entry}, {2} (nothing to change) or {-1, code}.  Hazard: the cluster client sends
# a script again when its reply was lost, so a request that landed finds its record (10
# minutes) and answers its entry again: a second run would append a second entry, and judge
# a transfer or a role that had landed as refused or as changing nothing.
MODERATE = """
local done = redis.call('GET', KEYS[9])
if done then return {1, done} end
local action, actor, target = ARGV[1], ARGV[2], ARGV[3]
local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local roles, has_owner, seed = {}, false, nil
local flat = redis.call('HGETALL', KEYS[3])
for i = 1, #flat, 2 do
  roles[flat[i]] = flat[i + 1]
  if flat[i + 1] == 'owner' then has_owner = true end
end
if not has_owner then
  seed = redis.call('HGET', KEYS[7], 'created_by')
  if seed and seed ~= '' then roles[seed] = 'owner' else seed = nil end
end
local mine = roles[actor] or 'member'
if ARGV[4] == '1' then mine = 'owner' end
local theirs = roles[target] or 'member'
if actor == target or theirs == 'owner' then return {-1, 'forbidden'} end
if action == 'role' or action == 'transfer' then
  if mine ~= 'owner' then return {-1, 'forbidden'} end
elseif mine == 'member' or (theirs == 'admin' and mine ~= 'owner') then
  return {-1, 'forbidden'}
end
local member = redis.call('SISMEMBER', KEYS[6], target) == 1
if not member and (action == 'kick' or action == 'mute' or action == 'role'
    or action == 'transfer') then
  return {-1, 'not_member'}
end
local function active(key)
  local stored = redis.call('HGET', key, target)
  if not stored then return false end
  local expiry = tonumber(stored)
  return expiry == 0 or expiry > ts
end
if (action == 'unban' and not active(KEYS[4])) or (action == 'unmute' and not active(KEYS[5]))
    or (action == 'role' and ARGV[9] == theirs) then
  return {2}
end
if seed then redis.call('HSET', KEYS[3], seed, 'owner') end
local expiry = nil
if action == 'kick' then
  redis.call('HDEL', KEYS[3], target)
elseif action == 'ban' then
  local d = tonumber(ARGV[8])
  expiry = 0
  if d > 0 then expiry = ts + d end
  redis.call('HSET', KEYS[4], target, string.format('%d', expiry))
  redis.call('HDEL', KEYS[3], target)
elseif action == 'unban' then
  redis.call('HDEL', KEYS[4], target)
elseif action == 'mute' then
  expiry = ts + tonumber(ARGV[8])
  redis.call('HSET', KEYS[5], target, string.format('%d', expiry))
elseif action == 'unmute' then
  redis.call('HDEL', KEYS[5], target)
elseif action == 'role' then
  if ARGV[9] == 'admin' then redis.call('HSET', KEYS[3], target, 'admin')
  else redis.call('HDEL', KEYS[3], target) end
elseif action == 'transfer' then
  for user, role in pairs(roles) do
    if role == 'owner' then redis.call('HSET', KEYS[3], user, 'admin') end
  end
  redis.call('HSET', KEYS[3], target, 'owner')
end
local seq = redis.call('INCR', KEYS[1])
local msg = ARGV[5] .. seq .. ',"id":"' .. seq .. ARGV[6] .. ts .. ARGV[7]
if expiry and expiry > 0 then msg = msg .. ',"until":' .. string.format('%d', expiry) end
msg = msg .. '}'
local n = redis.call('GET', KEYS[8]) or '0'
-- 'k' marks an entry that is no plain message (changes refuse it as a target).
local entry = {seq .. '-0', 'm', msg, 't', ts, 'n', n, 'k', 'moderation'}
local maxlen = tonumber(ARGV[10])
if maxlen > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, unpack(entry))
else
  redis.call('XADD', KEYS[2], unpack(entry))
end
redis.call('SET', KEYS[9], msg, 'PX', 600000)
return {1, msg}
"""

_encode = msgspec.json.Encoder().encode
_decode_message = msgspec.json.Decoder(Message).decode


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ClusterModeration:
    def __init__(self, cluster: Cluster, *, max_len: int = 10_000) -> None:
        self._cluster = cluster
        self._script = Script(cluster, MODERATE)
        self._max_len = max_len

    async def roles(self, room_ids: Collection[str]) -> dict[str, dict[str, str]]:
        ids = list(dict.fromkeys(room_ids))
        rows = await asyncio.gather(
            *(self._cluster.send(keys.room_roles_key(r), "HGETALL", keys.room_roles_key(r),
                                 what="roles") for r in ids)
        )  # fmt: skip
        return {rid: _pairs(row) for rid, row in zip(ids, rows, strict=True)}

    async def service_admin(self, user_id: str) -> bool:
        key = keys.service_admins_key()
        return bool(await self._cluster.send(key, "SISMEMBER", key, user_id, what="admin?"))

    async def restricted(self, room_id: str, user_id: str, what: str) -> int | None:
        key = keys.room_bans_key(room_id) if what == "ban" else keys.room_mutes_key(room_id)
        # On a send's path (a mute): one HGET, batched with the membership reads of the
        # same slot.  Only a restriction found costs a second round trip, for the master's
        # clock (the script's, which wrote the expiry), not this node's.
        stored = await self._cluster.send(key, "HGET", key, user_id, what=what)
        if stored is None:
            return None
        expiry = int(stored)
        if expiry == 0:
            return 0
        seconds, micros = await self._cluster.send(key, "TIME", what="time")
        return expiry if expiry > int(seconds) * 1000 + int(micros) // 1000 else None

    async def moderate(self, req: ModerationRequest) -> Message | None:
        room = req.room
        script_keys = (
            keys.room_seq_key(room), keys.room_log_key(room), keys.room_roles_key(room),
            keys.room_bans_key(room), keys.room_mutes_key(room), keys.room_members_key(room),
            keys.room_meta_key(room), keys.room_mcount_key(room),
            keys.room_idem_key(room, req.actor.id, f"moderation.{req.random}"),
        )  # fmt: skip
        head = b'{"room":' + _encode(room) + b',"seq":'
        middle = b"." + req.random.encode() + b'","ts":'
        args = (
            req.action, req.actor.id, req.target.id, int(req.service_admin), head, middle,
            _tail(req), req.duration_ms, req.role or "", self._max_len,
        )  # fmt: skip
        answer = await self._script(script_keys, args, durable=True, what=req.action)
        status = int(answer[0])
        if status < 0:
            raise moderation_refusal(_text(answer[1]))
        if status == 2:
            return None
        return _decode_message(answer[1])


def _pairs(flat: Any) -> dict[str, str]:
    if isinstance(flat, dict):  # RESP3 maps
        return {_text(k): _text(v) for k, v in flat.items()}
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}


def _tail(req: ModerationRequest) -> bytes:
    tail = b',"from":' + _encode(req.actor) + b',"kind":"moderation","action":'
    tail += _encode(req.action) + b',"user":' + _encode(req.target)
    if req.action == "role":
        tail += b',"role":' + _encode(req.role)
    return tail
