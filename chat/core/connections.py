"""A socket's life on this node: authenticate, follow its channels, enter its local rooms,
follow membership changes made anywhere, and let go of everything when it leaves.

Channels a socket needs: its user's channel (DMs, control messages) and the channel of each
non-DM room it belongs to.  DM rooms travel on the two users' channels.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from chat import channels
from chat.core.accounts import Accounts
from chat.core.lifetime import Lifetimes
from chat.core.limiter import EventLimiter
from chat.core.ordering import Ordering
from chat.core.people import DELETED_NAME
from chat.core.presence import Presence
from chat.core.subscriptions import Subscriptions
from chat.errors import unavailable
from chat.models import Room, RoomCounts, UserRecord, is_dm_room, peer_of
from chat.ports import AccountStore, LocalDelivery, RoomStore

#: A user's counts in some rooms (``ReadStore.counts``).
Counts = Callable[[str, Collection[str]], Awaitable[dict[str, RoomCounts]]]
#: A user's role in each of some rooms (``RoomRoles.roles_of``).
Roles = Callable[[str, Mapping[str, Room]], Awaitable[dict[str, str]]]


@dataclass(slots=True)
class Conn:
    """One connected socket, as the use-case layer sees it (kept for every idle connection,
    hence slots and a shared empty ``watching`` until the socket watches someone)."""

    sid: str
    user: UserRecord
    jti: str
    exp: int
    #: The token's sign-in and generation (which ``revoke`` notices concern it).
    family: str = ""
    gen: int = 0
    #: Why the socket must end (``token_expired``/``token_revoked``), once it must.
    ended: str | None = None
    #: Every room the socket is in (DMs and the lobby included).
    rooms: set[str] = field(default_factory=set)
    #: Channels acquired for this socket (released exactly once, on leave or disconnect).
    channels: set[str] = field(default_factory=set)
    #: Users whose presence this socket watches.
    watching: frozenset[str] = frozenset()
    #: Room records and DM peers' names, read during the handshake for its ``session`` event
    #: (cleared once sent).
    session_rooms: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Notices applied to this socket (rooms gained or lost, renames, settings): a handshake
    #: reading the user's state again sees whether one raced its read (``_catch_up``).
    notices: int = 0
    #: See ``lock``; made on first use.
    _lock: asyncio.Lock | None = None

    @property
    def lock(self) -> asyncio.Lock:
        """Serialises this socket's membership changes (a join racing a leave of one room)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    @property
    def user_channel(self) -> str:
        return channels.user_channel(self.user.id)


#: Reads of the user's state a handshake makes before it gives up (each raced by a notice).
CATCH_UP_TRIES = 3


def room_channel(room_id: str) -> str | None:
    """The channel a room's messages travel on for its members, None for DMs."""
    return None if is_dm_room(room_id) else channels.room_channel(room_id)


class Connections:
    def __init__(
        self,
        accounts: Accounts,
        users: AccountStore,
        rooms: RoomStore,
        subscriptions: Subscriptions,
        ordering: Ordering,
        delivery: LocalDelivery,
        presence: Presence,
        limiter: EventLimiter | None = None,
        *,
        lifetimes: Lifetimes | None = None,
        counts: Counts | None = None,
        roles: Roles | None = None,
    ) -> None:
        #: The user's role in each room (``session``).
        self._roles = roles
        #: Read position and unread counts of the user's rooms (``session``, ``joined``).
        self._counts = counts
        #: Ends the sockets whose token expires or is revoked.
        self.lifetimes = lifetimes or Lifetimes(delivery)
        self._presence = presence
        self._limiter = limiter  # spends the ``connect`` row of each handshake
        self._accounts = accounts
        self._users = users
        self._rooms = rooms
        self._subscriptions = subscriptions
        self._ordering = ordering
        self._delivery = delivery
        self.by_sid: dict[str, Conn] = {}
        self.by_user: dict[str, set[str]] = {}

    # --- handshake -----------------------------------------------------------------------

    async def open(self, sid: str, token: object) -> Conn:
        """Authenticate and follow every channel the socket needs, before the client is told
        it is connected: nothing published afterwards can miss it."""
        claims = await self._accounts.authenticate(token)
        self.lifetimes.admit(claims.exp)
        if self._limiter is not None:  # before any work: handshakes are the costliest event
            await self._limiter.take("connect", claims.sub)
        user = await self._accounts.me(claims.sub)
        conn = Conn(sid, user, claims.jti, claims.exp, claims.fam, claims.gen)
        conn.rooms = await self._rooms.user_rooms(user.id)
        conn.session_rooms = await self._describe(user.id, conn.rooms)
        conn.channels = {conn.user_channel, *filter(None, map(room_channel, conn.rooms))}
        await self._subscriptions.acquire(conn.channels)  # all of them, or none
        try:
            # Counted once the channels are live: a message stored meanwhile is counted here
            # and may arrive live too (a client takes the counts of a session as of its
            # last_seq).
            await self._add_counts(user.id, conn.session_rooms)
        except BaseException:
            await self._subscriptions.release(conn.channels)
            raise
        self.by_sid[sid] = conn
        self.by_user.setdefault(user.id, set()).add(sid)
        self.lifetimes.track(conn)
        try:
            # Hazard: a logout, a kick or an invite, a rename that landed after the reads
            # above but before this socket could hear of it (its user's channel not yet live,
            # or the socket not yet in ``by_sid``) went unheard.  Read again now: a later one
            # is heard (each notice is published after its write) and finds this socket.
            await self._accounts.check(claims)
            await self._catch_up(conn)
            await self._presence.connected(user.id, sid)
        except BaseException:
            # Revoked, refused (too many connections) or failed: the client is never told it is
            # connected, so no disconnect handler will undo any of this.
            await self.close(conn)
            raise
        return conn

    async def _catch_up(self, conn: Conn) -> None:
        """Apply what changed for the user while the socket was opening: rooms left or lost
        (a kicked user's new socket must not go on receiving the room), rooms gained, the
        user's name and settings.  A notice applied meanwhile may be newer than this read, or
        older: read again until none raced it (a read begun after a notice sees its write)."""
        for _ in range(CATCH_UP_TRIES):
            seen = conn.notices
            rooms, user = await asyncio.gather(
                self._rooms.user_rooms(conn.user.id), self._accounts.me(conn.user.id)
            )
            if conn.notices != seen:
                continue
            conn.user = user
            for room_id in conn.rooms - rooms:
                await self.remove_room(conn, room_id)
            gained = rooms - conn.rooms
            if gained:
                described = await self._describe(user.id, gained)
                await self._add_counts(user.id, described)
                conn.session_rooms.update(described)
                for room_id in gained:
                    await self.add_room(conn, room_id)
            if conn.notices == seen:
                return
        raise unavailable("the account changed during the handshake; connect again")

    async def _describe(self, user_id: str, room_ids: set[str]) -> dict[str, dict[str, Any]]:
        rooms = await self._rooms.get_many(room_ids)
        peers = {peer_of(r, user_id) for r in rooms if is_dm_room(r)}
        names = {u.id: u.name for u in (await self._users.users(peers)).values()}
        roles = await self._roles(user_id, rooms) if self._roles is not None else {}
        return {
            room_id: room.wire(
                0, names.get(peer_of(room_id, user_id), DELETED_NAME) if room.is_dm else None,
                roles.get(room_id),
            )
            for room_id, room in rooms.items()
        }  # fmt: skip

    async def _add_counts(self, user_id: str, described: dict[str, dict[str, Any]]) -> None:
        if self._counts is not None and described:
            for room_id, counts in (await self._counts(user_id, described)).items():
                described[room_id].update(counts.wire())

    def enter(self, conn: Conn) -> dict[str, Any]:
        """Put the socket in its local rooms and return its ``session``.

        Synchronous on purpose: each room's ``last_seq`` is the pointer of the stream the
        socket now receives, read with no await after entering, so every later message is
        delivered live and every earlier one is the client's to ``sync``.
        """
        self._delivery.enter(conn.sid, channels.user_sio_room(conn.user.id))
        self._delivery.enter(conn.sid, channels.token_sio_room(conn.jti))
        rooms = []
        for room_id in sorted(conn.rooms):
            if (channel := room_channel(room_id)) is not None:
                self._delivery.enter(conn.sid, channel)
            described = conn.session_rooms.get(room_id)
            if described is not None:
                rooms.append({**described, "last_seq": self.pointer(conn, room_id)})
        conn.session_rooms = {}
        settings = {"receipts": conn.user.receipts}
        return {"user": conn.user.private(), "rooms": rooms, "settings": settings}

    def pointer(self, conn: Conn, room_id: str) -> int:
        channel = room_channel(room_id) or conn.user_channel
        return self._ordering.pointer(channel, room_id) or 0

    async def close(self, conn: Conn) -> None:
        self.lifetimes.forget(conn)
        self.by_sid.pop(conn.sid, None)
        sids = self.by_user.get(conn.user.id, set())
        sids.discard(conn.sid)
        if not sids:
            self.by_user.pop(conn.user.id, None)
        async with conn.lock:
            followed, conn.channels, conn.rooms = conn.channels, set(), set()
            await self._subscriptions.release(followed)
        await self._presence.disconnected(conn.user.id, conn.sid)

    # --- membership, on every node where the user has sockets ------------------------------

    def local(self, user_id: str) -> list[Conn]:
        return [self.by_sid[sid] for sid in self.by_user.get(user_id, ()) if sid in self.by_sid]

    async def follow_channel(self, conn: Conn, channel: str, local_room: str) -> None:
        """Follow one more channel for this socket (a watched user's presence)."""
        async with conn.lock:
            if conn.sid in self.by_sid and channel not in conn.channels:
                await self._subscriptions.acquire([channel])
                conn.channels.add(channel)
                self._delivery.enter(conn.sid, local_room)

    async def drop_channel(self, conn: Conn, channel: str, local_room: str) -> None:
        async with conn.lock:
            if channel in conn.channels:
                conn.channels.discard(channel)
                self._delivery.leave(conn.sid, local_room)
                await self._subscriptions.release([channel])

    async def renamed(self, user_id: str, name: str) -> None:
        """The user's new name, for the messages their local sockets send from now on."""
        for conn in self.local(user_id):
            conn.notices += 1
            conn.user = msgspec.structs.replace(conn.user, name=name)
        await self._delivery.emit(
            channels.user_sio_room(user_id), "user", {"id": user_id, "name": name}
        )

    async def add_room(self, conn: Conn, room_id: str) -> int:
        """Follow one more room for this socket; return its pointer (see ``enter``)."""
        async with conn.lock:
            if conn.sid not in self.by_sid:
                return 0  # gone while we waited
            channel = room_channel(room_id)
            if channel is not None and channel not in conn.channels:
                await self._subscriptions.acquire([channel])
                conn.channels.add(channel)
                self._delivery.enter(conn.sid, channel)
            # Only once followed: a room listed without its channel looks joined to every
            # later check on this socket, and is never followed.
            conn.rooms.add(room_id)
            return self.pointer(conn, room_id)

    async def remove_room(self, conn: Conn, room_id: str) -> None:
        async with conn.lock:
            conn.rooms.discard(room_id)
            channel = room_channel(room_id)
            if channel is not None and channel in conn.channels:
                conn.channels.discard(channel)
                self._delivery.leave(conn.sid, channel)
                await self._subscriptions.release([channel])

    async def room_added(self, user_id: str, room_id: str, notice: dict[str, Any]) -> None:
        """Follow the room for each local socket of the user and tell each from which seq it
        receives the room live (``last_seq``, as in ``session``: what lies below, it syncs)."""
        local = self.local(user_id)
        for conn in local:  # at once: a handshake's read must not take its place (_catch_up)
            conn.notices += 1
        counts: dict[str, Any] = {}
        if local and self._counts is not None:
            found = await self._counts(user_id, [room_id])
            counts = found[room_id].wire() if room_id in found else {}
        for conn in local:
            pointer = await self.add_room(conn, room_id)
            joined = {**notice, "last_seq": pointer, **counts}
            await self._delivery.emit_to(conn.sid, "joined", joined)

    async def room_removed(self, user_id: str, room_id: str, notice: dict[str, Any]) -> None:
        for conn in self.local(user_id):
            conn.notices += 1
            await self.remove_room(conn, room_id)
        await self._delivery.emit(channels.user_sio_room(user_id), "left", notice)

    # --- receipts --------------------------------------------------------------------------

    async def receipt(self, channel: str, reader: str, data: dict[str, Any]) -> None:
        """A receipt, to the local sockets on ``channel`` of users with receipts on (never to
        the reader's own)."""
        for sid in self._delivery.sids(channel):
            conn = self.by_sid.get(sid)
            if conn is not None and conn.user.receipts and conn.user.id != reader:
                await self._delivery.emit_to(sid, "receipt", data)

    async def settings_changed(self, user_id: str, receipts: bool, origin: str) -> None:
        for conn in self.local(user_id):
            conn.notices += 1
            conn.user = msgspec.structs.replace(conn.user, receipts=receipts)
            if conn.sid != origin:
                await self._delivery.emit_to(conn.sid, "settings", {"receipts": receipts})
