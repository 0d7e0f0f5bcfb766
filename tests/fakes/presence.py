"""``PresenceStore`` in memory, honest to ``chat/adapters/cluster_presence.py``.

``PresenceState`` is the cluster (shared by every node of a test); ``MemoryPresence`` is one
node's view of it.  A user is online from the first registration anywhere until ``settle`` (or
a purge) finds no connection left; leases lapse on the state's clock.
"""

from __future__ import annotations

from fakes.clock import Clock

REFUSED = -1


class PresenceState:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.conns: dict[str, dict[str, str]] = {}  # user -> {"<node>/<sid>": incarnation}
        self.online: set[str] = set()
        self.node_users: dict[tuple[str, str], set[str]] = {}
        self.grace: dict[str, float] = {}  # user -> when the grace period ends
        self.leases: dict[str, tuple[str, float]] = {}  # node -> (incarnation, expiry s)
        self.nodes: dict[str, str] = {}  # node -> incarnation, as last renewed
        self.purges: dict[str, tuple[str, float]] = {}
        self.settled_at: dict[str, int] = {}  # user -> the ``now`` of their last offline

    def is_online(self, user_id: str) -> bool:
        return user_id in self.online

    def lease_alive(self, node_id: str) -> bool:
        lease = self.leases.get(node_id)
        return lease is not None and lease[1] > self.clock()

    def went_offline(self, user_id: str, now: int = 0) -> bool:
        """``SETTLE``: offline only if nothing is registered and the user is online; the
        same call again (its ``now``) answers True again, as the script answers a resend."""
        if self.conns.get(user_id):
            return False
        if user_id not in self.online:
            return bool(now) and self.settled_at.get(user_id) == now
        self.online.discard(user_id)
        self.settled_at[user_id] = now
        return True


class MemoryPresence:
    def __init__(self, state: PresenceState, node_id: str) -> None:
        self.state = state
        self.node_id = node_id

    async def register(
        self, user_id: str, sid: str, incarnation: str, now: int, most: int = 0
    ) -> int:
        s = self.state
        s.node_users.setdefault((self.node_id, incarnation), set()).add(user_id)
        conns = s.conns.setdefault(user_id, {})
        field = f"{self.node_id}/{sid}"
        if most > 0 and field not in conns and len(conns) >= most:
            return REFUSED
        conns[field] = incarnation
        if user_id in s.online:
            return 0
        s.online.add(user_id)
        s.settled_at.pop(user_id, None)
        return 1

    async def unregister(self, user_id: str, sid: str, due: float) -> None:
        conns = self.state.conns.get(user_id, {})
        conns.pop(f"{self.node_id}/{sid}", None)
        if not conns:
            self.state.grace[user_id] = due

    async def forget_user(self, user_id: str, incarnation: str) -> None:
        self.state.node_users.get((self.node_id, incarnation), set()).discard(user_id)

    async def due(self, now: float, limit: int = 100) -> list[str]:
        ripe = sorted((t, u) for u, t in self.state.grace.items() if t <= now)[:limit]
        for _, user_id in ripe:
            del self.state.grace[user_id]  # claimed: by one node only
        return [u for _, u in ripe]

    async def settle(self, user_id: str, now: int) -> bool:
        return self.state.went_offline(user_id, now)

    async def online(self, user_ids: list[str]) -> dict[str, bool]:
        return {u: self.state.is_online(u) for u in user_ids}

    async def online_count(self) -> int:
        return len(self.state.online)

    async def renew(self, incarnation: str, lease_ms: int) -> bool:
        previous = self.state.leases.get(self.node_id)
        alive = self.state.lease_alive(self.node_id)
        self.state.leases[self.node_id] = (incarnation, self.state.clock() + lease_ms / 1000)
        self.state.nodes[self.node_id] = incarnation
        return alive and previous is not None and previous[0] == incarnation

    async def release(self, incarnation: str) -> None:
        self.state.leases.pop(self.node_id, None)
        await self.forget_node(self.node_id, incarnation)

    async def dead_nodes(self) -> list[tuple[str, str]]:
        return [
            (node, inc)
            for node, inc in self.state.nodes.items()
            if node != self.node_id and not self.state.lease_alive(node)
        ]

    async def live_nodes(self) -> list[str]:
        return sorted(node for node in self.state.nodes if self.state.lease_alive(node))

    async def claim_purge(self, node_id: str, incarnation: str) -> bool:
        claim = self.state.purges.get(node_id)
        if claim is not None and claim[1] > self.state.clock():
            return False
        self.state.purges[node_id] = (incarnation, self.state.clock() + 60)
        return True

    async def users_of(self, node_id: str, incarnation: str) -> list[str]:
        return sorted(self.state.node_users.get((node_id, incarnation), ()))

    async def purge_user(
        self, node_id: str, incarnation: str, user_id: str, now: int
    ) -> tuple[int, bool]:
        conns = self.state.conns.get(user_id, {})
        dead = [f for f, inc in conns.items() if f.startswith(f"{node_id}/") and inc == incarnation]
        for field in dead:
            del conns[field]
        return len(dead), bool(dead) and self.state.went_offline(user_id)

    async def forget_node(self, node_id: str, incarnation: str) -> None:
        self.state.node_users.pop((node_id, incarnation), None)
        if self.state.nodes.get(node_id) == incarnation:
            del self.state.nodes[node_id]
