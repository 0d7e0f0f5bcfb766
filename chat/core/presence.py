"""Who is online, fleet-wide, and correct after a node dies without a goodbye.

Each socket is registered in the cluster under this node's *incarnation* (a random id renewed
whenever our lease lapsed).  A user goes online with the first registration anywhere and
offline when the last one is gone and a grace period (5 s) passed without a new one, so a
quick reconnect produces no flap.  Transitions are decided inside cluster scripts (once,
however many nodes race) and published on the user's presence channel for watchers.

A node renews a lease (every 5 s, for 15 s).  Any live node purges the entries of a node whose
lease lapsed and announces the resulting offline transitions, so a crashed node's users are
shown offline within lease + one purge round (~20 s) unless they reconnected elsewhere.  A node
removes only its own entries, and a purge only the dead incarnation's: a node that was paused
past its lease re-registers its surviving sockets under a new incarnation when it wakes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any

from chat import channels
from chat.errors import ChatError
from chat.models import Envelope, encode_envelope
from chat.ports import Broker, PresenceStore

log = logging.getLogger(__name__)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Presence:
    def __init__(
        self,
        store: PresenceStore,
        broker: Broker,
        *,
        grace: float = 5.0,
        renew_every: float = 5.0,
        lease: float = 15.0,
        sweep_every: float = 1.0,
        per_user: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._per_user = per_user  # connections of one user on all nodes (0: no bound)
        self._broker = broker
        self._grace = grace
        self._renew_every = renew_every
        self._lease_ms = int(lease * 1000)
        self._sweep_every = sweep_every
        self._clock = clock
        self.incarnation = secrets.token_hex(6)
        self._local: dict[str, str] = {}  # sid -> user id, what this node registered
        self._unregistering: dict[str, str] = {}  # sid -> user id, gone but still registered
        #: Users claimed from the grace list whose settling (or its announcement) failed, with
        #: the time of the first try: tried again with it, a settle that did land is known
        #: (the store answers it again) and announced.
        self._unsettled: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.transitions = {"online": 0, "offline": 0}
        self.purged = 0
        self.online_users = 0  # fleet-wide, refreshed every lease round

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self._store.renew(self.incarnation, self._lease_ms)
        for name, loop in (("lease", self._renewing), ("sweep", self._sweeping)):
            self._tasks.append(asyncio.create_task(self._forever(loop), name=f"presence-{name}"))

    async def stop(self) -> None:
        """After every socket was unregistered (their grace periods run on other nodes)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:  # before the lease goes: no purge would find them after
            await self._unregister_failed()
        except Exception as exc:
            log.warning("presence: %d sockets not unregistered: %r", len(self._unregistering), exc)
        try:
            await self._store.release(self.incarnation)
        except Exception as exc:  # the lease then lapses and another node purges us
            log.warning("presence: lease not released: %r", exc)

    async def _forever(self, step: Callable[[], Coroutine[Any, Any, float]]) -> None:
        """Run ``step`` until cancelled; it returns the pause before its next run."""
        while True:
            try:
                pause = await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the cluster is failing over: try again next round
                log.warning("presence: %s failed: %r", step.__name__, exc)
                pause = 1.0
            await asyncio.sleep(pause)

    # --- sockets of this node ----------------------------------------------------------------

    async def connected(self, user_id: str, sid: str) -> None:
        """Register the socket, or raise ``too_many_connections`` (the caller then undoes the
        handshake with ``disconnected``)."""
        self._local[sid] = user_id
        outcome = await self._store.register(
            user_id, sid, self.incarnation, now_ms(), self._per_user
        )
        if outcome < 0:
            raise ChatError(
                "too_many_connections",
                f"a user may have at most {self._per_user} connections open",
                429,
            )
        if outcome:
            await self._announce(user_id, online=True)

    async def disconnected(self, user_id: str, sid: str) -> None:
        if self._local.pop(sid, None) is None:
            return
        try:
            await self._unregister(user_id, sid)
        except Exception:
            # Kept and tried again every lease round: a socket the store still lists keeps
            # its user online, and counts against their connections, for good.
            self._unregistering[sid] = user_id
            raise

    async def _unregister(self, user_id: str, sid: str) -> None:
        """Idempotent: a retry of one that did land finds nothing to remove."""
        await self._store.unregister(user_id, sid, self._clock() + self._grace)
        if user_id not in self._local.values():
            await self._store.forget_user(user_id, self.incarnation)

    async def _unregister_failed(self) -> None:
        for sid, user_id in list(self._unregistering.items()):
            await self._unregister(user_id, sid)
            del self._unregistering[sid]

    async def online(self, user_ids: list[str]) -> dict[str, bool]:
        return await self._store.online(user_ids)

    @property
    def connections(self) -> int:
        return len(self._local)

    # --- background rounds ---------------------------------------------------------------------

    async def _renewing(self) -> float:
        if not await self._store.renew(self.incarnation, self._lease_ms):
            await self._reincarnate()
        await self._unregister_failed()
        await self._purge_dead()
        self.online_users = await self._store.online_count()
        return self._renew_every

    async def _reincarnate(self) -> None:
        """Our lease lapsed (a long pause): others may have purged our entries.  Register
        the sockets we still hold under a new incarnation, which no late purge touches."""
        old, self.incarnation = self.incarnation, secrets.token_hex(6)
        log.warning("presence: lease lapsed; re-registering %d sockets", len(self._local))
        await self._store.renew(self.incarnation, self._lease_ms)
        for sid, user_id in list(self._local.items()):
            if await self._store.register(user_id, sid, self.incarnation, now_ms()):
                await self._announce(user_id, online=True)
        await self._store.forget_node(self._store.node_id, old)

    async def _purge_dead(self) -> None:
        for node_id, incarnation in await self._store.dead_nodes():
            if not await self._store.claim_purge(node_id, incarnation):
                continue  # another node does it
            users = await self._store.users_of(node_id, incarnation)
            for user_id in users:
                removed, offline = await self._store.purge_user(
                    node_id, incarnation, user_id, now_ms()
                )
                self.purged += removed
                if offline:
                    await self._announce(user_id, online=False)
            await self._store.forget_node(node_id, incarnation)
            log.info("presence: purged node %s (%d users)", node_id, len(users))

    async def _sweeping(self) -> float:
        # A claim takes the user off the store's grace list, so one whose settle failed (a
        # failover) is kept here and settled next round: nobody else would ever settle them,
        # and they would be shown online for good.  The retry keeps the first try's time, so
        # a settle that landed (its reply lost) is answered again and announced; one that
        # came back online meanwhile settles nothing.
        claimed = await self._store.due(self._clock())
        now = now_ms()
        for user_id, at in [*self._unsettled.items(), *((u, now) for u in claimed)]:
            try:
                if await self._store.settle(user_id, at):
                    await self._announce(user_id, online=False)
            except Exception as exc:
                self._unsettled[user_id] = at
                log.warning("presence: settling %s failed, again next round: %r", user_id, exc)
            else:
                self._unsettled.pop(user_id, None)
        return self._sweep_every

    async def _announce(self, user_id: str, *, online: bool) -> None:
        self.transitions["online" if online else "offline"] += 1
        event = {"user": user_id, "online": online, "ts": now_ms()}
        payload = encode_envelope(Envelope("emit", "presence", event))
        await self._broker.publish(channels.presence_channel(user_id), payload)
