"""``typing`` notices, delivered to each local socket unless its user blocked the typist.

Typing is published like any event (on the room's channel, or the DM partner's); the filter
runs where it is delivered, per socket, with the blocks of the local users cached on this
node.  What keeps the cache right:

- an entry is used only while one of the sockets the user had *before* the blocks were read
  is still connected here: that socket kept the user's channel followed since, so every
  ``BlocksChanged`` published after the read reached this node and dropped the entry (a user
  who left the node and came back is read again);
- a ``BlocksChanged`` that arrives while blocks are being read keeps that user's read out of
  the cache (each read in flight collects the users changed meanwhile; only theirs: a global
  counter let anyone's no-op unblock void every read, so the cache never filled and each
  notice read every local member's blocks again).

Hazard: delivery runs inside a shard's listener loop, which must not wait on the cluster.  A
notice for users whose blocks are not cached is handed to a task that reads them (bounded by
``READ_TIMEOUT``) and then delivers it; when the read fails the notice is dropped, never
delivered unfiltered (typing is ephemeral; showing a blocked user's is not).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any

import msgspec

from chat.channels import channel_entity
from chat.core.connections import Connections
from chat.core.inbound import InboundDispatcher
from chat.core.people import BlocksChanged
from chat.models import decode_json
from chat.ports import LocalDelivery, PeopleStore

log = logging.getLogger(__name__)

READ_TIMEOUT = 1.0
CACHE_MAX = 100_000


class TypingFilter:
    def __init__(
        self, store: PeopleStore, connections: Connections, delivery: LocalDelivery
    ) -> None:
        self._store = store
        self._connections = connections
        self._delivery = delivery
        #: user -> (their sockets here before the read, the users they blocked)
        self._cache: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        #: Per read in flight (by a token of its own): the users whose blocks changed meanwhile.
        self._reading: dict[object, set[str]] = {}
        #: Deliveries waiting for blocks to be read.
        self.tasks: set[asyncio.Task[None]] = set()

    def register(self, inbound: InboundDispatcher) -> None:
        inbound.on_emit("typing", self.deliver)
        inbound.on_control(BlocksChanged, self._changed)

    async def _changed(self, channel: str, message: BlocksChanged) -> None:
        _, user_id = channel_entity(channel)
        for changed in self._reading.values():
            changed.add(user_id)
        self._cache.pop(user_id, None)

    async def deliver(self, channel: str, raw: bytes, skip_user: str | None) -> None:
        try:
            data = decode_json(raw)
            typist = data["user"]["id"]
        except (msgspec.DecodeError, TypeError, KeyError):
            await self._delivery.emit_raw(channel, "typing", raw, skip_user)
            return
        missing = [u for u in self._users(channel) if not self._fresh(u)]
        if not missing:
            await self._emit(channel, raw, data, typist, skip_user)
            return
        task = asyncio.create_task(self._read_then_emit(missing, channel, raw, data, skip_user))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _read_then_emit(
        self, users: list[str], channel: str, raw: bytes, data: Any, skip_user: str | None
    ) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                await self._read(users)
            await self._emit(channel, raw, data, data["user"]["id"], skip_user)
        except Exception as exc:  # dropped: see the module's hazard
            log.debug("typing on %s dropped: %r", channel, exc)

    async def _read(self, users: Collection[str]) -> None:
        token, changed = object(), set[str]()
        before = {u: frozenset(self._connections.by_user.get(u, ())) for u in users}
        self._reading[token] = changed
        try:
            found = await asyncio.gather(*(self._store.blocks(u) for u in users))
        finally:
            del self._reading[token]
        if len(self._cache) >= CACHE_MAX:
            self._cache = {u: e for u, e in self._cache.items() if self._fresh(u)}
        for user_id, blocked in zip(users, found, strict=True):
            # Not kept for a user whose blocks changed meanwhile: the read may predate it.
            if before[user_id] and user_id not in changed:
                self._cache[user_id] = (before[user_id], frozenset(blocked))

    def _users(self, channel: str) -> set[str]:
        by_sid = self._connections.by_sid
        return {by_sid[sid].user.id for sid in self._delivery.sids(channel) if sid in by_sid}

    def _fresh(self, user_id: str) -> bool:
        entry = self._cache.get(user_id)
        return entry is not None and not entry[0].isdisjoint(
            self._connections.by_user.get(user_id, ())
        )

    def _blocked(self, user_id: str, typist: str) -> bool:
        """Unknown (not cached: the read missed a user who connected since) counts as blocked:
        the next notice, two seconds on, reads it."""
        entry = self._cache.get(user_id)
        return entry is None or typist in entry[1]

    async def _emit(
        self, channel: str, raw: bytes, data: Any, typist: str, skip_user: str | None
    ) -> None:
        by_sid, sids = self._connections.by_sid, self._delivery.sids(channel)
        conns = [by_sid[sid] for sid in sids if sid in by_sid]
        if not any(self._blocked(c.user.id, typist) for c in conns):
            await self._delivery.emit_raw(channel, "typing", raw, skip_user)
            return
        for conn in conns:
            if conn.user.id != skip_user and not self._blocked(conn.user.id, typist):
                await self._delivery.emit_to(conn.sid, "typing", data)
