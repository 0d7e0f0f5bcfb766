"""Limits held in the Redis Cluster, so they bind across every node: token buckets, the
login throttles (failure counters with a doubling cool-down), and the token denylist.

Time comes from the Redis master (``TIME`` inside the scripts), not from the nodes' clocks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from chat import keys
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.scripts import Script

NOW_MS = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

TOKEN_BUCKET = (
    NOW_MS
    + """
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate / 1000)
if tokens < 1 then
  return {0, math.ceil((1 - tokens) * 1000 / rate)}
end
local granted = math.min(want, math.floor(tokens))
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - granted), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {granted, 0}
"""
)

# KEYS: failure records, all in one slot.  ARGV: op, first cool-down ms, cap ms, then one
# failure limit per key.  Returns the longest cool-down left (ms, 0: none).  A record counts
# failures; reaching its limit starts a cool-down that doubles with every lockout (capped)
# and counts afresh.  A record is forgotten a day after its last failure, or by ``ok``.
# Failures while a record cools down are not counted: only attempts that raced the check can
# make them, and counting them would stretch the cool-down of an owner's address.
COOLDOWNS = (
    NOW_MS
    + """
local op, first, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if op == 'ok' then redis.call('DEL', unpack(KEYS)) return 0 end
local day, longest = 86400000, 0
for i, key in ipairs(KEYS) do
  local until_ms = tonumber(redis.call('HGET', key, 'until') or '0')
  if until_ms > now then
    longest = math.max(longest, until_ms - now)
  elseif op == 'fail' then
    local fails = redis.call('HINCRBY', key, 'fails', 1)
    redis.call('PEXPIRE', key, day)
    if fails >= tonumber(ARGV[3 + i]) then
      local lockouts = redis.call('HINCRBY', key, 'lockouts', 1)
      local cooldown = math.min(cap, first * 2 ^ (lockouts - 1))
      redis.call('HSET', key, 'fails', 0, 'until', math.floor(now + cooldown))
      redis.call('PEXPIRE', key, math.ceil(cooldown) + day)
      longest = math.max(longest, cooldown)
    end
  end
end
return math.ceil(longest)
"""
)


class ClusterLimits:
    def __init__(
        self, cluster: Cluster, *, login_cooldown_s: float, login_cooldown_max_s: float
    ) -> None:
        self._cluster = cluster
        self._bucket = Script(cluster, TOKEN_BUCKET)
        self._cooldowns = Script(cluster, COOLDOWNS)
        self._cooldown_ms = (int(login_cooldown_s * 1000), int(login_cooldown_max_s * 1000))

    async def take(
        self, scope: str, ident: str, rate: float, burst: int, want: int = 1
    ) -> tuple[int, float]:
        """Take up to ``want`` tokens; ``(granted, 0)``, or ``(0, seconds until one is free)``."""
        key = keys.rate_key(scope, ident)
        granted, wait_ms = await self._bucket([key], [rate, burst, want], what="limit")
        return int(granted), int(wait_ms) / 1000

    async def cooldown(self, op: str, counters: Mapping[str, int]) -> float:
        """``check`` / ``fail`` / ``ok`` failure counters (see ``COOLDOWNS``); the seconds of
        cool-down left."""
        names = list(counters)
        args = (op, *self._cooldown_ms, *counters.values())
        left_ms = await self._cooldowns(names, args, what="login")
        return int(left_ms) / 1000

    async def revoke(self, jti: str, seconds: float) -> None:
        ttl_ms = max(1, math.ceil(seconds * 1000))
        key = keys.revoked_key(jti)
        await self._cluster.send(key, "SET", key, 1, "PX", ttl_ms, what="revoke")

    async def is_revoked(self, jti: str) -> bool:
        key = keys.revoked_key(jti)
        return bool(await self._cluster.send(key, "EXISTS", key, what="revoked?"))

    async def once(self, scope: str, ident: str, seconds: float) -> bool:
        key = keys.rate_key(scope, ident)
        ms = max(1, int(seconds * 1000))
        return bool(await self._cluster.send(key, "SET", key, 1, "NX", "PX", ms, what="once"))
