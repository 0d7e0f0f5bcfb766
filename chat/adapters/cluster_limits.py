"""Limits held in the Redis Cluster, so they bind across every node: token buckets, the
login cool-down of an account, and the token denylist.

Time comes from the Redis master (``TIME`` inside the scripts), not from the nodes' clocks.
"""

from __future__ import annotations

import math

from chat import keys
from chat.adapters.cluster import Cluster, Script

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

# KEYS[1]: the account's throttle record.  ARGV: op, limit, first cool-down ms, cap ms.
# Returns the milliseconds left in a cool-down (0: none).  Consecutive failures are
# counted; reaching the limit starts a cool-down that doubles with every lockout (capped)
# and restarts the count; a success forgets everything.
LOGIN_THROTTLE = (
    NOW_MS
    + """
local op = ARGV[1]
if op == 'ok' then redis.call('DEL', KEYS[1]) return 0 end
local until_ms = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if until_ms > now then return until_ms - now end
if op == 'check' then return 0 end
local fails = redis.call('HINCRBY', KEYS[1], 'fails', 1)
redis.call('PEXPIRE', KEYS[1], 86400000)
if fails < tonumber(ARGV[2]) then return 0 end
local lockouts = redis.call('HINCRBY', KEYS[1], 'lockouts', 1)
local cooldown = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * 2 ^ (lockouts - 1))
redis.call('HSET', KEYS[1], 'fails', 0, 'until', math.floor(now + cooldown))
redis.call('PEXPIRE', KEYS[1], cooldown + 86400000)
return math.ceil(cooldown)
"""
)


class ClusterLimits:
    def __init__(
        self,
        cluster: Cluster,
        *,
        login_fail_limit: int,
        login_cooldown_s: float,
        login_cooldown_max_s: float,
    ) -> None:
        self._cluster = cluster
        self._bucket = Script(cluster, TOKEN_BUCKET)
        self._throttle = Script(cluster, LOGIN_THROTTLE)
        self._login_args = (
            login_fail_limit,
            int(login_cooldown_s * 1000),
            int(login_cooldown_max_s * 1000),
        )

    async def take(
        self, scope: str, ident: str, rate: float, burst: int, want: int = 1
    ) -> tuple[int, float]:
        """Take up to ``want`` tokens; ``(granted, 0)``, or ``(0, seconds until one is free)``."""
        key = keys.rate_key(scope, ident)
        granted, wait_ms = await self._cluster.run(
            lambda _: self._bucket([key], [rate, burst, want]), "limit"
        )
        return int(granted), int(wait_ms) / 1000

    async def login(self, email: str, op: str) -> float:
        """``check`` / ``fail`` / ``ok`` an account's login; return cool-down seconds left."""
        key = keys.login_throttle_key(email)
        args = (op, *self._login_args)
        left_ms = await self._cluster.run(lambda _: self._throttle([key], args), "login")
        return int(left_ms) / 1000

    async def revoke(self, jti: str, seconds: float) -> None:
        ttl_ms = max(1, math.ceil(seconds * 1000))
        key = keys.revoked_key(jti)
        await self._cluster.command(key, "SET", key, 1, "PX", ttl_ms, what="revoke")

    async def is_revoked(self, jti: str) -> bool:
        key = keys.revoked_key(jti)
        return bool(await self._cluster.command(key, "EXISTS", key, what="revoked?"))

    async def once(self, scope: str, ident: str, seconds: float) -> bool:
        key = keys.rate_key(scope, ident)
        ms = max(1, int(seconds * 1000))
        return bool(await self._cluster.command(key, "SET", key, 1, "NX", "PX", ms, what="once"))
