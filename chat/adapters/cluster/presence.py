"""The connection registry in the Redis Cluster (why there, not on the pub/sub shards: it must
survive a shard restart, and the cluster has replicas; the shards hold no state at all).

Per user (slot ``{u:<id>}``): ``conns`` (field ``<node>/<sid>``, value the node's incarnation)
and ``presence`` (``online`` 1/0, ``ts``).  Transitions happen inside Lua scripts on that slot,
so each one is decided exactly once however many nodes race.  Per node: a lease that it renews
and, per incarnation, the set of users it registered, which is what a purge of a dead node
walks.  Globally: the live nodes and their incarnations, the users whose grace period is
running, and the online users (for the count).

Every transition bumps ``v`` in the presence record and is then applied to the rosters of
the user's rooms (``roster.py``), which order concurrent updates by that version.
The registration script also holds the bound on a user's connections across all nodes
(``CHAT_CONNECTIONS_PER_USER``): it counts the fields it would add to.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from chat import keys
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.roster import ClusterRoster
from chat.adapters.cluster.scripts import Script

log = logging.getLogger(__name__)

#: ``register``'s answer when the user has as many connections as allowed.
REFUSED = -1

# Hazard: the cluster client sends a script again when its reply was lost.  A transition
# that landed then finds the state it set, marked as its own: ``again`` answers its version
# once more, or the transition would never be applied to the rosters nor announced.  The
# mark: a connect's socket and time (``by``: another socket connecting in the same
# millisecond on another node is another call, answered 0, so a user comes online once
# however many nodes race; the same socket registered again later, by a node that woke from
# a pause, is too); a settle's or purge's time (``ts``: one node claims a user due offline,
# and the core's own retry of a settle passes its first time again).
AGAIN = """
local function again(state, value, mark)
  if state[1] == value and state[2] == mark then return tonumber(state[3]) end
  return 0
end
"""

# ARGV: field, incarnation, now, most connections (0: no bound).  Returns -1 (refused), 0
# (registered, was online) or the new presence version (registered, came online).
CONNECT = (
    AGAIN
    + """
local most = tonumber(ARGV[4])
if most > 0 and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0
   and redis.call('HLEN', KEYS[1]) >= most then
  return -1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local mark = ARGV[1] .. ' ' .. ARGV[3]
local state = redis.call('HMGET', KEYS[2], 'online', 'by', 'v')
if state[1] == '1' then return again(state, '1', mark) end
redis.call('HSET', KEYS[2], 'online', '1', 'ts', ARGV[3], 'by', mark)
return redis.call('HINCRBY', KEYS[2], 'v', 1)
"""
)

# Offline only if nothing is registered any more and the user is still online: a user who
# came back during the grace period, or was settled by another node already, stays as is.
SETTLE = (
    AGAIN
    + """
if redis.call('HLEN', KEYS[1]) > 0 then return 0 end
local state = redis.call('HMGET', KEYS[2], 'online', 'ts', 'v')
if state[1] ~= '1' then return again(state, '0', ARGV[1]) end
redis.call('HSET', KEYS[2], 'online', '0', 'ts', ARGV[1])
return redis.call('HINCRBY', KEYS[2], 'v', 1)
"""
)

# Remove one dead incarnation's entries (only those: a node that paused and came back
# registers its sockets again under a new incarnation), then settle.
PURGE_USER = (
    AGAIN
    + """
local fields = redis.call('HGETALL', KEYS[1])
local removed = 0
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, #ARGV[1]) == ARGV[1] and fields[i + 1] == ARGV[2] then
    redis.call('HDEL', KEYS[1], fields[i])
    removed = removed + 1
  end
end
if redis.call('HLEN', KEYS[1]) > 0 then return {removed, 0} end
local state = redis.call('HMGET', KEYS[2], 'online', 'ts', 'v')
if removed == 0 then return {0, again(state, '0', ARGV[3])} end
if state[1] ~= '1' then return {removed, 0} end
redis.call('HSET', KEYS[2], 'online', '0', 'ts', ARGV[3])
return {removed, redis.call('HINCRBY', KEYS[2], 'v', 1)}
"""
)

# KEYS: the grace set, this claim's record.  ARGV: now, most.  The users due, taken
# off the set: each claimed by one node only.  Hazard: a resend (the reply was lost) would find
# them gone and answer none, and nobody would ever settle them: it answers its record instead.
CLAIM = """
local done = redis.call('GET', KEYS[2])
if done then return cjson.decode(done) end
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #found == 0 then return found end
redis.call('ZREM', KEYS[1], unpack(found))
redis.call('SET', KEYS[2], cjson.encode(found), 'PX', 60000)
return found
"""

UNREGISTER = """
redis.call('HDEL', KEYS[1], ARGV[1])
return redis.call('HLEN', KEYS[1])
"""

FORGET_NODE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ClusterPresence:
    def __init__(self, cluster: Cluster, node_id: str, roster: ClusterRoster) -> None:
        self._cluster = cluster
        self.node_id = node_id
        self._roster = roster
        self._connect = Script(cluster, CONNECT)
        self._unregister = Script(cluster, UNREGISTER)
        self._settle = Script(cluster, SETTLE)
        self._claim = Script(cluster, CLAIM)
        self._purge_user = Script(cluster, PURGE_USER)
        self._forget_node = Script(cluster, FORGET_NODE)

    async def _run(self, script: Script, script_keys: list[str], args: list[Any]) -> Any:
        return await script(script_keys, args, what="presence")

    # --- this node's sockets -----------------------------------------------------------------

    async def register(
        self, user_id: str, sid: str, incarnation: str, now: int, most: int = 0
    ) -> int:
        """Record a connection unless the user has ``most`` (0: no bound); 1 if the user just
        came online, 0 if not, ``REFUSED``."""
        script_keys = [keys.user_conns_key(user_id), keys.user_presence_key(user_id)]
        users = keys.node_users_key(self.node_id, incarnation)
        args = [f"{self.node_id}/{sid}", incarnation, now, most]
        _, version = await asyncio.gather(
            self._cluster.send(users, "SADD", users, user_id, what="presence index"),
            self._run(self._connect, script_keys, args),
        )
        if version == REFUSED or not version:
            return int(version)
        key = keys.online_users_key()
        await asyncio.gather(
            self._cluster.send(key, "SADD", key, user_id, what="online"),
            self._roster.presence(user_id, True, int(version)),
        )
        return 1

    async def unregister(self, user_id: str, sid: str, due: float) -> None:
        """Remove one of our connections; with none left, the grace period starts."""
        conns = keys.user_conns_key(user_id)
        left = await self._run(self._unregister, [conns], [f"{self.node_id}/{sid}"])
        if not left:
            key = keys.offline_due_key()
            await self._cluster.send(key, "ZADD", key, due, user_id, what="grace")

    async def forget_user(self, user_id: str, incarnation: str) -> None:
        """This node holds no socket of the user any more: leave the purge index."""
        users = keys.node_users_key(self.node_id, incarnation)
        await self._cluster.send(users, "SREM", users, user_id, what="presence index")

    # --- transitions ---------------------------------------------------------------------------

    async def due(self, now: float, limit: int = 100) -> list[str]:
        """Claim users whose grace period is over (each claimed by one node only)."""
        script_keys = [keys.offline_due_key(), keys.offline_claim_key(secrets.token_hex(8))]
        found = await self._run(self._claim, script_keys, [now, limit])
        return [_text(member) for member in found]

    async def settle(self, user_id: str, now: int) -> bool:
        """Offline if nothing is registered; True if the user just went offline."""
        script_keys = [keys.user_conns_key(user_id), keys.user_presence_key(user_id)]
        version = await self._run(self._settle, script_keys, [now])
        if version:
            await self._went_offline(user_id, int(version))
        return bool(version)

    async def _went_offline(self, user_id: str, version: int) -> None:
        """Never raises: the transition is decided (a retry would find nothing to settle), so
        it must still be announced.  The online set only feeds the count of online users."""
        key = keys.online_users_key()
        outcomes: tuple[Any, ...] = await asyncio.gather(
            self._cluster.send(key, "SREM", key, user_id, what="online"),
            self._roster.presence(user_id, False, version),
            return_exceptions=True,
        )
        if isinstance(outcomes[0], BaseException):
            log.warning("presence: %s not counted offline: %r", user_id, outcomes[0])

    async def online(self, user_ids: list[str]) -> dict[str, bool]:
        states = await asyncio.gather(
            *(
                self._cluster.send(
                    keys.user_presence_key(u), "HGET", keys.user_presence_key(u), "online"
                )
                for u in user_ids
            )
        )
        return {u: _text(s) == "1" for u, s in zip(user_ids, states, strict=True)}

    async def online_count(self) -> int:
        key = keys.online_users_key()
        return int(await self._cluster.send(key, "SCARD", key, what="online"))

    # --- node leases ---------------------------------------------------------------------------

    async def renew(self, incarnation: str, lease_ms: int) -> bool:
        """Renew our lease; False if it had lapsed (we may have been purged meanwhile)."""
        lease, nodes = keys.node_lease_key(self.node_id), keys.nodes_key()
        previous, _ = await asyncio.gather(
            self._cluster.send(lease, "SET", lease, incarnation, "PX", lease_ms, "GET"),
            self._cluster.send(nodes, "HSET", nodes, self.node_id, incarnation),
        )
        return previous is not None and _text(previous) == incarnation

    async def release(self, incarnation: str) -> None:
        """A clean exit: our entries were removed one by one; drop the lease and the index."""
        lease = keys.node_lease_key(self.node_id)
        await self._cluster.send(lease, "DEL", lease, what="lease")
        await self._forget(self.node_id, incarnation)

    async def live_nodes(self) -> list[str]:
        """Nodes (us included) whose lease is running: those a change of the shard set waits
        for (a node that died stops counting when its lease lapses)."""
        key = keys.nodes_key()
        nodes = [_text(n) for n in await self._cluster.send(key, "HKEYS", key)]
        leases = await asyncio.gather(
            *(self._cluster.send(keys.node_lease_key(n), "EXISTS", keys.node_lease_key(n))
              for n in nodes)
        )  # fmt: skip
        return sorted(n for n, alive in zip(nodes, leases, strict=True) if alive)

    async def dead_nodes(self) -> list[tuple[str, str]]:
        """Nodes (other than us) whose lease lapsed: ``(node, incarnation)``."""
        key = keys.nodes_key()
        nodes = {
            _text(node): _text(incarnation)
            for node, incarnation in (await self._cluster.send(key, "HGETALL", key)).items()
            if _text(node) != self.node_id
        }
        leases = await asyncio.gather(
            *(self._cluster.send(keys.node_lease_key(n), "EXISTS", keys.node_lease_key(n))
              for n in nodes)
        )  # fmt: skip
        return [
            (n, inc) for (n, inc), alive in zip(nodes.items(), leases, strict=True) if not alive
        ]

    async def claim_purge(self, node_id: str, incarnation: str) -> bool:
        key = keys.node_purge_key(node_id)
        claimed = await self._cluster.send(key, "SET", key, incarnation, "NX", "PX", 60_000)
        return bool(claimed)

    async def users_of(self, node_id: str, incarnation: str) -> list[str]:
        key = keys.node_users_key(node_id, incarnation)
        return sorted(_text(m) for m in await self._cluster.send(key, "SMEMBERS", key))

    async def purge_user(
        self, node_id: str, incarnation: str, user_id: str, now: int
    ) -> tuple[int, bool]:
        """Remove a dead incarnation's entries of one user; ``(removed, went offline)``."""
        script_keys = [keys.user_conns_key(user_id), keys.user_presence_key(user_id)]
        removed, version = await self._run(
            self._purge_user, script_keys, [f"{node_id}/", incarnation, now]
        )
        if version:
            await self._went_offline(user_id, int(version))
        return int(removed), bool(version)

    async def forget_node(self, node_id: str, incarnation: str) -> None:
        await self._forget(node_id, incarnation)

    async def _forget(self, node_id: str, incarnation: str) -> None:
        users = keys.node_users_key(node_id, incarnation)
        await self._cluster.send(users, "DEL", users, what="purge")
        await self._run(self._forget_node, [keys.nodes_key()], [node_id, incarnation])
