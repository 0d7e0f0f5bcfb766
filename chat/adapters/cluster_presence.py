"""The connection registry in the Redis Cluster (why there, not on the pub/sub shards: it must
survive a shard restart, and the cluster has replicas; the shards hold no state at all).

Per user (slot ``{u:<id>}``): ``conns`` (field ``<node>/<sid>``, value the node's incarnation)
and ``presence`` (``online`` 1/0, ``ts``).  Transitions happen inside Lua scripts on that slot,
so each one is decided exactly once however many nodes race.  Per node: a lease that it renews
and, per incarnation, the set of users it registered, which is what a purge of a dead node
walks.  Globally: the live nodes and their incarnations, the users whose grace period is
running, and the online users (for the count).
"""

from __future__ import annotations

from functools import partial

from redis.asyncio.cluster import RedisCluster

from chat import keys
from chat.adapters.cluster import Cluster, Script

CONNECT = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('HGET', KEYS[2], 'online') == '1' then return 0 end
redis.call('HSET', KEYS[2], 'online', '1', 'ts', ARGV[3])
return 1
"""

# Offline only if nothing is registered any more and the user is still online: a user who
# came back during the grace period, or was settled by another node already, stays as is.
SETTLE = """
if redis.call('HLEN', KEYS[1]) > 0 then return 0 end
if redis.call('HGET', KEYS[2], 'online') ~= '1' then return 0 end
redis.call('HSET', KEYS[2], 'online', '0', 'ts', ARGV[1])
return 1
"""

# Remove one dead incarnation's entries (only those: a node that paused and came back
# registers its sockets again under a new incarnation), then settle.
PURGE_USER = """
local fields = redis.call('HGETALL', KEYS[1])
local removed = 0
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, #ARGV[1]) == ARGV[1] and fields[i + 1] == ARGV[2] then
    redis.call('HDEL', KEYS[1], fields[i])
    removed = removed + 1
  end
end
if removed == 0 or redis.call('HLEN', KEYS[1]) > 0 then return {removed, 0} end
if redis.call('HGET', KEYS[2], 'online') ~= '1' then return {removed, 0} end
redis.call('HSET', KEYS[2], 'online', '0', 'ts', ARGV[3])
return {removed, 1}
"""

FORGET_NODE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _zrem(client: RedisCluster, *, member: str) -> int:
    return int(await client.zrem(keys.offline_due_key(), member))


async def _exists(client: RedisCluster, *, key: str) -> int:
    return int(await client.exists(key))


class ClusterPresence:
    def __init__(self, cluster: Cluster, node_id: str) -> None:
        self._cluster = cluster
        self.node_id = node_id
        self._connect = Script(cluster, CONNECT)
        self._settle = Script(cluster, SETTLE)
        self._purge_user = Script(cluster, PURGE_USER)
        self._forget_node = Script(cluster, FORGET_NODE)

    # --- this node's sockets -----------------------------------------------------------------

    async def register(self, user_id: str, sid: str, incarnation: str, now: int) -> bool:
        """Record a connection; True if the user just came online."""
        script_keys = [keys.user_conns_key(user_id), keys.user_presence_key(user_id)]
        field = f"{self.node_id}/{sid}"
        users = keys.node_users_key(self.node_id, incarnation)
        await self._cluster.run(lambda c: c.sadd(users, user_id), "presence index")
        online = await self._cluster.run(
            lambda _: self._connect(script_keys, [field, incarnation, now]), "presence"
        )
        if online:
            await self._cluster.run(lambda c: c.sadd(keys.online_users_key(), user_id), "online")
        return bool(online)

    async def unregister(self, user_id: str, sid: str, due: float) -> None:
        """Remove one of our connections; with none left, the grace period starts."""
        field = f"{self.node_id}/{sid}"
        conns = keys.user_conns_key(user_id)

        async def remove(c: RedisCluster) -> int:
            pipe = c.pipeline(transaction=True)
            pipe.hdel(conns, field)
            pipe.hlen(conns)
            return int((await pipe.execute())[1])

        if not await self._cluster.run(remove, "presence"):
            await self._cluster.run(
                lambda c: c.zadd(keys.offline_due_key(), {user_id: due}), "grace"
            )

    async def forget_user(self, user_id: str, incarnation: str) -> None:
        """This node holds no socket of the user any more: leave the purge index."""
        users = keys.node_users_key(self.node_id, incarnation)
        await self._cluster.run(lambda c: c.srem(users, user_id), "presence index")

    # --- transitions ---------------------------------------------------------------------------

    async def due(self, now: float, limit: int = 100) -> list[str]:
        """Claim users whose grace period is over (each claimed by one node only)."""
        found = await self._cluster.run(
            lambda c: c.zrangebyscore(keys.offline_due_key(), "-inf", now, start=0, num=limit),
            "grace",
        )
        claimed = []
        for member in found:
            user_id = _text(member)
            if await self._cluster.run(partial(_zrem, member=user_id), "grace"):
                claimed.append(user_id)
        return claimed

    async def settle(self, user_id: str, now: int) -> bool:
        """Offline if nothing is registered; True if the user just went offline."""
        script_keys = [keys.user_conns_key(user_id), keys.user_presence_key(user_id)]
        offline = await self._cluster.run(lambda _: self._settle(script_keys, [now]), "presence")
        if offline:
            await self._went_offline(user_id)
        return bool(offline)

    async def _went_offline(self, user_id: str) -> None:
        await self._cluster.run(lambda c: c.srem(keys.online_users_key(), user_id), "online")

    async def online(self, user_ids: list[str]) -> dict[str, bool]:
        async def fetch(c):  # type: ignore[no-untyped-def]
            pipe = c.pipeline(transaction=False)
            for user_id in user_ids:
                pipe.hget(keys.user_presence_key(user_id), "online")
            return await pipe.execute()

        states = await self._cluster.run(fetch, "online") if user_ids else []
        return {u: _text(s) == "1" for u, s in zip(user_ids, states, strict=True)}

    async def online_count(self) -> int:
        return int(await self._cluster.run(lambda c: c.scard(keys.online_users_key()), "online"))

    # --- node leases ---------------------------------------------------------------------------

    async def renew(self, incarnation: str, lease_ms: int) -> bool:
        """Renew our lease; False if it had lapsed (we may have been purged meanwhile)."""
        lease = keys.node_lease_key(self.node_id)
        previous = await self._cluster.run(
            lambda c: c.set(lease, incarnation, px=lease_ms, get=True), "lease"
        )
        await self._cluster.run(
            lambda c: c.hset(keys.nodes_key(), self.node_id, incarnation), "lease"
        )
        return previous is not None and _text(previous) == incarnation

    async def release(self, incarnation: str) -> None:
        """A clean exit: our entries were removed one by one; drop the lease and the index."""
        await self._cluster.run(lambda c: c.delete(keys.node_lease_key(self.node_id)), "lease")
        await self._forget(self.node_id, incarnation)

    async def dead_nodes(self) -> list[tuple[str, str]]:
        """Nodes (other than us) whose lease lapsed: ``(node, incarnation)``."""
        nodes = await self._cluster.run(lambda c: c.hgetall(keys.nodes_key()), "nodes")
        dead = []
        for node, incarnation in nodes.items():
            node_id = _text(node)
            if node_id == self.node_id:
                continue
            if not await self._cluster.run(
                partial(_exists, key=keys.node_lease_key(node_id)), "lease"
            ):
                dead.append((node_id, _text(incarnation)))
        return dead

    async def claim_purge(self, node_id: str, incarnation: str) -> bool:
        key = keys.node_purge_key(node_id)
        claimed = await self._cluster.run(
            lambda c: c.set(key, incarnation, nx=True, px=60_000), "purge"
        )
        return bool(claimed)

    async def users_of(self, node_id: str, incarnation: str) -> list[str]:
        members = await self._cluster.run(
            lambda c: c.smembers(keys.node_users_key(node_id, incarnation)), "purge"
        )
        return sorted(_text(m) for m in members)

    async def purge_user(
        self, node_id: str, incarnation: str, user_id: str, now: int
    ) -> tuple[int, bool]:
        """Remove a dead incarnation's entries of one user; ``(removed, went offline)``."""
        script_keys = [keys.user_conns_key(user_id), keys.user_presence_key(user_id)]
        removed, offline = await self._cluster.run(
            lambda _: self._purge_user(script_keys, [f"{node_id}/", incarnation, now]), "purge"
        )
        if offline:
            await self._went_offline(user_id)
        return int(removed), bool(offline)

    async def forget_node(self, node_id: str, incarnation: str) -> None:
        await self._forget(node_id, incarnation)

    async def _forget(self, node_id: str, incarnation: str) -> None:
        users = keys.node_users_key(node_id, incarnation)
        await self._cluster.run(lambda c: c.delete(users), "purge")
        await self._cluster.run(
            lambda _: self._forget_node([keys.nodes_key()], [node_id, incarnation]), "purge"
        )
