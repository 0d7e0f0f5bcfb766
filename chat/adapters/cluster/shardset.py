"""The shard set's record of truth in the Redis Cluster (slot ``{shardset}``): the ``Layout``
every node follows, as one JSON value, and each node's acknowledgement of the step it runs.

A change is written by compare-and-set: the script writes only if the stored (epoch, phase)
is still the one the writer read, so two operators cannot both start a change, and a
coordinator that lost a race learns it instead of overwriting the other's step.
"""

from __future__ import annotations

from collections.abc import Collection

from chat import keys
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.scripts import Script
from chat.models import Layout

# ARGV: the step the writer read (``<epoch>:<phase>``, empty: no record yet), the new JSON.
# Returns 1 (written) or 0 (the record moved on meanwhile).
CAS = """
local current = redis.call('GET', KEYS[1])
local seen = ''
if current then
  local doc = cjson.decode(current)
  seen = tostring(doc['epoch']) .. ':' .. doc['phase']
end
if seen ~= ARGV[1] then
  -- A resend of a write that landed (its reply was lost) finds its own record.
  if current == ARGV[2] then return 1 end
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


def step_text(step: tuple[int, str] | None) -> str:
    return "" if step is None else f"{step[0]}:{step[1]}"


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def parse_step(raw: bytes | str) -> tuple[int, str]:
    epoch, _, phase = _text(raw).partition(":")
    return int(epoch), phase


class ClusterShardSet:
    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._cas = Script(cluster, CAS)

    async def read(self) -> Layout | None:
        key = keys.shardset_key()
        raw = await self._cluster.send(key, "GET", key, what="shard set")
        return None if raw is None else Layout.decode(raw)

    async def write(self, layout: Layout, expected: tuple[int, str] | None) -> bool:
        """Store ``layout`` if the record is still at step ``expected`` (None: absent).
        Durable: a failover must not bring back the step before."""
        written = await self._cas(
            [keys.shardset_key()], [step_text(expected), layout.encode()],
            durable=True, what="shard set change",
        )  # fmt: skip
        return bool(written)

    async def ack(self, node_id: str, step: tuple[int, str]) -> None:
        key = keys.shardset_acks_key()
        await self._cluster.send(key, "HSET", key, node_id, step_text(step), what="shard set ack")

    async def forget(self, node_ids: Collection[str]) -> None:
        if node_ids:
            key = keys.shardset_acks_key()
            await self._cluster.send(key, "HDEL", key, *node_ids, what="shard set acks")

    async def acks(self) -> dict[str, tuple[int, str]]:
        key = keys.shardset_acks_key()
        found = await self._cluster.send(key, "HGETALL", key, what="shard set acks")
        return {_text(node): parse_step(step) for node, step in found.items()}
