"""Nodes over the fakes, wired like ``chat/wiring.py`` wires them (``use_cases``), and clients that
call events the way the Socket.IO adapter does: what the unit tests of the use cases drive.

``World`` is what the nodes share (the cluster's stores, the shards, one clock); each
``MemoryNode`` has its own sockets, channels, ordering and presence incarnation.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from chat import config
from chat.core import controls
from chat.core.accounts import Accounts
from chat.core.changes import Changes
from chat.core.connections import Conn, Connections
from chat.core.deletion import AccountDeletion, DeletedNames
from chat.core.events import ClientEvents
from chat.core.inbound import InboundDispatcher, room_ordering
from chat.core.limiter import EventLimiter
from chat.core.member_presence import MemberPresence
from chat.core.messaging import Messaging
from chat.core.moderation import Moderation
from chat.core.passwords import PasswordHasher
from chat.core.people import People
from chat.core.presence import Presence
from chat.core.reading import Reading
from chat.core.recovery import Recovery
from chat.core.renaming import Renaming
from chat.core.roles import RoomRoles
from chat.core.rooms import Rooms
from chat.core.service import ServiceTokens
from chat.core.subscriptions import Subscriptions, history_baselines
from chat.core.tokens import TokenService
from chat.core.typing_filter import TypingFilter
from chat.errors import ChatError
from fakes.accounts import MemoryAccounts
from fakes.broker import MemoryBroker, MemoryHub
from fakes.changes import MemoryChanges
from fakes.clock import Clock
from fakes.delivery import MemoryDelivery
from fakes.history import MemoryHistory
from fakes.limits import MemoryLimits
from fakes.moderation import MemoryModeration
from fakes.people import MemoryPeople
from fakes.presence import MemoryPresence, PresenceState
from fakes.reads import MemoryReads
from fakes.rooms import MemoryRooms
from fakes.service_tokens import MemoryServiceTokens
from fakes.sessions import MemorySessions

#: Every event's row, high enough that only the limits' own tests meet them.
OPEN_LIMITS = dict.fromkeys(config.EVENT_LIMITS, (1000.0, 1000))
MINT = object()


@dataclass
class World:
    clock: Clock = field(default_factory=Clock)
    hub: MemoryHub = field(default_factory=MemoryHub)
    accounts: MemoryAccounts = field(default_factory=MemoryAccounts)

    def __post_init__(self) -> None:
        self.history = MemoryHistory(self.clock)
        self.changes = MemoryChanges(self.history)
        self.presence = PresenceState(self.clock)
        self.rooms = MemoryRooms(self.accounts, self.presence, clock=self.clock)
        self.limits = MemoryLimits(self.clock)
        self.sessions = MemorySessions(self.clock)
        self.service_tokens = MemoryServiceTokens()
        self.tokens = TokenService(signing_key="s" * 32, issuer="chat", clock=self.clock)
        self.history.roster = self._roster
        self.reads = MemoryReads(self.history, self._member_count)
        self.rooms.on_member = self.reads.membership
        self.accounts.on_created = lambda user: self.reads.membership("lobby", user, True)
        self.moderation = MemoryModeration(lambda: self.rooms, self.history)
        self.people = MemoryPeople(self.accounts, self.history, self.rooms)

    def _member_ids(self, room: str) -> set[str]:
        return (
            set(self.accounts.records) if room == "lobby" else self.rooms.members.get(room, set())
        )

    def _roster(self, room: str) -> dict[str, str]:
        records = self.accounts.records
        return {u: records[u].name for u in self._member_ids(room) if u in records}

    def _member_count(self, room: str) -> int:
        """As the member set's SCARD: a DM has none (its members are in its id)."""
        return 0 if room.startswith("dm:") else len(self._member_ids(room))


class MemoryNode:
    _ids = itertools.count(1)

    def __init__(
        self,
        world: World,
        node_id: str = "n1",
        *,
        limits: dict[str, Any] | None = None,
        per_user: int = 0,
        receipts_max: int = 20,
        edit_window_s: int = 86400,
        members_max: int = 10_000,
        blocks_max: int = 1000,
    ) -> None:
        self.world, w = world, world
        self.delivery = MemoryDelivery()
        self.ordering = room_ordering(self.delivery, w.history, hold_ms=50)
        self.fanout = InboundDispatcher(self.delivery, self.ordering)
        self.broker = MemoryBroker(w.hub, self.fanout)
        hasher = PasswordHasher(memory_cost=8192, time_cost=1, workers=1)
        self.service = ServiceTokens(
            w.service_tokens, w.accounts, self.broker.publish, clock=w.clock
        )
        self.accounts = Accounts(
            w.accounts, w.limits, hasher, w.tokens, login_ip_rate=100, sessions=w.sessions,
            service=self.service, clock=w.clock,
        )  # fmt: skip
        self.presence = Presence(
            MemoryPresence(w.presence, node_id), self.broker, per_user=per_user, clock=w.clock
        )
        follow = Subscriptions(self.broker, self.ordering, history_baselines(w.rooms, w.history))
        self.limiter = EventLimiter(w.limits, {**OPEN_LIMITS, **(limits or {})}, clock=w.clock)
        self.roles = RoomRoles(w.moderation, w.rooms, members_max=members_max)
        self.connections = Connections(
            self.accounts, w.accounts, w.rooms, follow, self.ordering, self.delivery,
            self.presence, self.limiter, counts=w.reads.counts, roles=self.roles.roles_of,
        )  # fmt: skip
        self.rooms = Rooms(
            w.rooms, w.accounts, w.history, self.broker, self.connections, w.limits, self.roles,
            deleted=w.people.deleted,
        )  # fmt: skip
        self.people = People(w.people, w.accounts, self.broker, blocks_max=blocks_max)
        self.typing = TypingFilter(w.people, self.connections, self.delivery)
        self.typing.register(self.fanout)
        self.messaging = Messaging(
            self.broker, w.history, self.rooms, w.rooms, w.accounts, text_max=2000
        )
        self.recovery = Recovery(DeletedNames(w.history, w.people), self.rooms, self.connections)
        self.deletion = AccountDeletion(
            self.accounts, w.accounts, w.people, w.sessions, w.rooms, self.broker, w.moderation
        )
        self.changes = Changes(
            w.changes, self.rooms, self.messaging, text_max=2000, edit_window_s=edit_window_s,
            roles=self.roles,
        )  # fmt: skip
        self.moderation = Moderation(
            self.roles, self.rooms, self.messaging, w.accounts, w.history, self.broker
        )
        self.watch = MemberPresence(self.presence, self.connections, self.rooms, w.rooms)
        self.profile = Renaming(self.accounts, w.rooms, self.broker)
        controls.register(self.fanout, self.connections)
        self.reading = Reading(
            w.reads, self.rooms, w.rooms, w.accounts, self.broker, receipts_max=receipts_max
        )
        api = ClientEvents(
            self.messaging, self.rooms, self.recovery, self.watch, self.profile, self.changes,
            reading=self.reading, moderation=self.moderation, people=self.people,
        )  # fmt: skip
        self.events = self.limiter.guard(api.events())

    async def settle(self) -> None:
        """Wait for the control actions queued so far (and those they queue)."""
        while self.fanout._tails or self.typing.tasks:
            await asyncio.gather(*self.fanout._tails.values(), *self.typing.tasks)

    async def connect(self, user_id: str, token: object = MINT) -> Client:
        """A handshake as the Socket.IO adapter runs it: open, then ``session``; with a token
        minted for the user unless one is given."""
        if token is MINT:
            user = self.world.accounts.records[user_id]
            token = self.world.tokens.issue(user.id, user.name)[0]
        sid = f"sid{next(self._ids)}"
        conn = await self.connections.open(sid, token)
        await self.settle()
        await self.delivery.emit_to(sid, "session", self.connections.enter(conn))
        return Client(self, sid, conn)


@dataclass
class Client:
    node: MemoryNode
    sid: str
    conn: Conn

    async def call(self, event: str, payload: Any) -> dict[str, Any]:
        """The ack, as ``SocketServer._event`` builds it; then every node settles."""
        try:
            ack = {"ok": True, **await self.node.events[event](self.conn, payload)}
        except ChatError as exc:
            ack = {"ok": False, "error": exc.to_wire()}
        await self.node.settle()
        return ack

    def events(self, name: str | None = None) -> list[Any]:
        return self.node.delivery.events(self.sid, name)

    def clear(self) -> None:
        self.node.delivery.received.pop(self.sid, None)

    async def close(self) -> None:
        await self.node.connections.close(self.conn)
        self.node.delivery.rooms = {
            room: sids - {self.sid} for room, sids in self.node.delivery.rooms.items()
        }
