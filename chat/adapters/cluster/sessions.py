"""Sign-ins in the Redis Cluster: refresh token families and each user's session generation.

Per user (slot ``{u:<id>}``): one hash of families (field: family id; value: JSON with the
SHA-256 digests of the current and the previous refresh secret, the time of the last rotation
and the family's expiry, in ms of the master's clock) and the generation counter.  Refresh
secrets are never stored, only their digests (256 random bits: a plain SHA-256 cannot be
reversed, and no slow hash is needed).  Every change is one script on that slot, so a refresh
racing a logout or another refresh is decided once.

Writes wait for a replica (``durable``): a rotation lost in a failover would turn the client's
next, legitimate refresh into an apparent reuse and end the sign-in.
"""

from __future__ import annotations

from typing import Any

from chat import keys
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.limits import NOW_MS
from chat.adapters.cluster.scripts import Script

# KEYS: families, generation.  ARGV: family, digest, ttl ms, most families per user.
# Expired families are dropped; beyond the limit, those closest to expiry (the least recently
# used) make room.
START = (
    NOW_MS
    + """
local ttl, most = tonumber(ARGV[3]), tonumber(ARGV[4])
local all = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #all, 2 do
  local exp = cjson.decode(all[i + 1]).exp
  if exp <= now then redis.call('HDEL', KEYS[1], all[i]) else live[#live + 1] = {all[i], exp} end
end
if #live >= most then
  table.sort(live, function(a, b) return a[2] < b[2] end)
  for i = 1, #live - most + 1 do redis.call('HDEL', KEYS[1], live[i][1]) end
end
local family = {cur = ARGV[2], prev = '', rot = now, exp = now + ttl}
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(family))
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return tonumber(redis.call('GET', KEYS[2]) or '0')
"""
)

# KEYS: families, generation.  ARGV: family, presented digest, new digest, ttl ms, grace ms,
# retired digests kept.  The OAuth 2.0 rotation rule: the current secret rotates; the previous
# one within the grace of its rotation is a concurrent refresh (two tabs); a secret this family
# issued before is a reuse, and the whole family ends.  Hazard: a secret the family never
# issued is only refused (``unknown``): ending the family for it would let anyone who learns
# a family id sign its owner out with made-up secrets.
ROTATE = (
    NOW_MS
    + """
local gen = tonumber(redis.call('GET', KEYS[2]) or '0')
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'unknown', gen} end
local f = cjson.decode(raw)
if f.exp <= now then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return {'unknown', gen}
end
local old = f.old or {}
if f.cur == ARGV[2] then
  local ttl = tonumber(ARGV[4])
  if f.prev ~= '' then table.insert(old, 1, f.prev) end
  while #old > tonumber(ARGV[6]) do table.remove(old) end
  f.prev, f.cur, f.rot, f.exp, f.old = f.cur, ARGV[3], now, now + ttl, old
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(f))
  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
  return {'rotated', gen}
end
-- A resend of this very rotation (its reply was lost): the new digest is this request's own.
if f.prev == ARGV[2] and f.cur == ARGV[3] then return {'rotated', gen} end
if f.prev == ARGV[2] and now - f.rot <= tonumber(ARGV[5]) then return {'grace', gen} end
local issued = f.prev == ARGV[2]
for _, digest in ipairs(old) do issued = issued or digest == ARGV[2] end
if not issued then return {'unknown', gen} end
redis.call('HDEL', KEYS[1], ARGV[1])
return {'reused', gen}
"""
)
#: Secrets of a family remembered after their rotation, beyond the previous one, so that an
#: old stolen secret presented late is still recognised as a reuse.
RETIRED_KEPT = 16

END_ALL = """
redis.call('DEL', KEYS[1])
return redis.call('INCR', KEYS[2])
"""

# KEYS: generation, families.  ARGV: the token's generation, its family ('' for none).
ALIVE = """
if tonumber(ARGV[1]) < tonumber(redis.call('GET', KEYS[1]) or '0') then return 0 end
if ARGV[2] ~= '' and redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return 0 end
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ClusterSessions:
    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._start = Script(cluster, START)
        self._rotate = Script(cluster, ROTATE)
        self._end_all = Script(cluster, END_ALL)
        self._alive = Script(cluster, ALIVE)

    async def start(
        self, user_id: str, family: str, digest: str, ttl_ms: int, max_families: int
    ) -> int:
        script_keys = [keys.refresh_families_key(user_id), keys.session_epoch_key(user_id)]
        args = [family, digest, ttl_ms, max_families]
        generation = await self._start(script_keys, args, durable=True, what="start sign-in")
        return int(generation)

    async def rotate(
        self, user_id: str, family: str, presented: str, digest: str, ttl_ms: int, grace_ms: int
    ) -> tuple[str, int]:
        script_keys = [keys.refresh_families_key(user_id), keys.session_epoch_key(user_id)]
        args = [family, presented, digest, ttl_ms, grace_ms, RETIRED_KEPT]
        outcome, generation = await self._rotate(script_keys, args, durable=True, what="refresh")
        return _text(outcome), int(generation)

    async def end(self, user_id: str, family: str) -> None:
        key = keys.refresh_families_key(user_id)
        await self._cluster.send(key, "HDEL", key, family, durable=True, what="end sign-in")

    async def end_all(self, user_id: str) -> int:
        script_keys = [keys.refresh_families_key(user_id), keys.session_epoch_key(user_id)]
        generation = await self._end_all(script_keys, [], durable=True, what="end every sign-in")
        return int(generation)

    async def generation(self, user_id: str) -> int:
        key = keys.session_epoch_key(user_id)
        return int(await self._cluster.send(key, "GET", key, what="generation") or 0)

    async def alive(self, user_id: str, family: str, generation: int) -> bool:
        script_keys = [keys.session_epoch_key(user_id), keys.refresh_families_key(user_id)]
        args = [generation, family]
        return bool(await self._alive(script_keys, args, what="alive?"))
