"""Service tokens in the Redis Cluster: one hash of records (token id -> JSON, the secret as a
SHA-256 only) and the set of service admins, both in the ``{g}`` slot so that one script
changes them together: a token's ``admin`` scope and its user's place among the admins never
disagree.  Revoked records stay (marked, their hash dropped): ``chat tokens list`` shows them,
and a second revoke can announce again.
"""

from __future__ import annotations

import msgspec

from chat import keys
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.scripts import Script
from chat.models import ServiceToken

ADD = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  -- A resend of an add that landed (its reply was lost) finds its own record.
  if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 1 end
  return 0
end
if ARGV[4] == '1' then redis.call('SADD', KEYS[2], ARGV[3]) end
return 1
"""

# cjson re-encodes numbers with 14 significant digits: a time in ms has 13 until the year 2286.
REVOKE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
local token = cjson.decode(raw)
if not token.revoked or token.revoked == 0 then
  token.revoked = tonumber(ARGV[2])
  token.hash = nil
  raw = cjson.encode(token)
  redis.call('HSET', KEYS[1], ARGV[1], raw)
end
redis.call('SREM', KEYS[2], token.user)
return raw
"""

_decode = msgspec.json.Decoder(ServiceToken).decode


def _record(raw: bytes | str | None) -> ServiceToken | None:
    return None if raw is None else _decode(raw)


class ClusterServiceTokens:
    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._add = Script(cluster, ADD)
        self._revoke = Script(cluster, REVOKE)
        self._tokens, self._admins = keys.service_tokens_key(), keys.service_admins_key()

    async def add(self, token: ServiceToken) -> None:
        admin = "1" if "admin" in token.scopes else "0"
        args = [token.id, msgspec.json.encode(token), token.user, admin]
        added = await self._add(
            [self._tokens, self._admins], args, durable=True, what="add service token"
        )
        if not added:  # 64 random bits: never, unless something is badly wrong
            raise RuntimeError(f"service token id {token.id} exists")

    async def get(self, token_id: str) -> ServiceToken | None:
        raw = await self._cluster.send(
            self._tokens, "HGET", self._tokens, token_id, what="service token"
        )
        return _record(raw)

    async def all(self) -> list[ServiceToken]:
        values = await self._cluster.send(
            self._tokens, "HVALS", self._tokens, what="service tokens"
        )
        return [_decode(raw) for raw in values]

    async def revoke(self, token_id: str, now_ms: int) -> ServiceToken | None:
        raw = await self._revoke(
            [self._tokens, self._admins], [token_id, now_ms], durable=True,
            what="revoke service token",
        )  # fmt: skip
        return _record(raw)

    async def is_admin(self, user_id: str) -> bool:
        found = await self._cluster.send(
            self._admins, "SISMEMBER", self._admins, user_id, what="service admin"
        )
        return bool(found)
