"""Rooms: who may see and use them, and membership changes that every node follows.

A membership change is stored first, then announced twice: a control message on the user's
channel (every node where the user has sockets follows or leaves the room for them, and tells
them with ``joined``/``left``), and an event on the room's channel for the other members,
skipping the user's own sockets so that each socket hears of it once.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any

from chat import channels
from chat.core.connections import Conn, Connections, room_channel
from chat.core.controls import control, room_notice
from chat.core.identity import clean_name
from chat.core.people import DELETED_NAME
from chat.errors import ChatError, forbidden, not_found
from chat.models import (
    ROOM_ID_PATTERN,
    Envelope,
    Room,
    UserRecord,
    dm_members,
    encode_envelope,
    is_dm_room,
    is_room_id,
    peer_of,
)
from chat.ports import AccountStore, Broker, History, Limits, RoomStore

LOBBY = "lobby"
#: Those of some user ids whose account was deleted (``PeopleStore.deleted``).
Deleted = Callable[[Collection[str]], Awaitable[set[str]]]
TYPING_EVERY = 2.0
KNOWN_USERS_MAX = 100_000


def check_room_id(room_id: object) -> str:
    if not is_room_id(room_id):
        raise ChatError("invalid_room", f"room ids match {ROOM_ID_PATTERN}")
    return room_id


class Rooms:
    def __init__(
        self,
        store: RoomStore,
        users: AccountStore,
        history: History,
        broker: Broker,
        connections: Connections,
        limits: Limits,
        *,
        deleted: Deleted | None = None,
    ) -> None:
        #: Which users' accounts were deleted: they existed, so their DMs stay readable.
        self._deleted = deleted
        self._limits = limits
        self._store = store
        self._users = users
        self._history = history
        self._broker = broker
        self._connections = connections
        self._known_users: OrderedDict[str, None] = OrderedDict()

    # --- access ------------------------------------------------------------------------------
    # Every decision reads the store of record (membership sets, user records), never what a
    # socket has cached: a socket's room set is filled by its own calls, so trusting it would
    # let a caller grant itself access (a ``join`` of someone else's DM did exactly that).

    async def readable(self, user_id: str, room_id: object, conn: Conn | None = None) -> Room:
        """A room the user may read: public, or private with the user as member."""
        room, member = await self._access(user_id, room_id, conn)
        if room.private and not member:
            raise forbidden("only members may read this room")
        return room

    async def member_of(self, user_id: str, room_id: object, conn: Conn | None = None) -> Room:
        """A room the user belongs to (who may send to it)."""
        room, member = await self._access(user_id, room_id, conn)
        if not member:
            raise forbidden("join the room first" if not room.private else "not a member")
        return room

    async def _access(self, user_id: str, room_id: object, conn: Conn | None) -> tuple[Room, bool]:
        """The room (``no_room`` if it does not exist) and whether the user is a member, both
        read together (one slot: one round trip).  A socket that missed a membership it has
        (an invite while it was connecting) follows the room from here on."""
        if not isinstance(room_id, str) or not (is_room_id(room_id) or is_dm_room(room_id)):
            raise not_found("no_room", "no such room")
        if is_dm_room(room_id) and not await self.users_exist(dm_members(room_id)):
            raise not_found("no_room", "no such room")  # a DM exists only between two users
        room, member = await asyncio.gather(
            self._store.get(room_id), self._store.is_member(room_id, user_id)
        )
        if room is None:
            raise not_found("no_room", "no such room")
        if member and conn is not None and room.id not in conn.rooms:
            await self._connections.add_room(conn, room.id)
        return room, member

    async def users_exist(self, user_ids: Iterable[str]) -> bool:
        """Whether every user exists or existed (a deleted account: its DMs stay readable by
        the other user; the DM guard, ``People.check_dm``, refuses new messages to it).
        Remembered per node once seen in the store: nothing turns either answer stale."""
        unknown = [u for u in dict.fromkeys(user_ids) if u not in self._known_users]
        if unknown:
            found = await self._users.users(unknown)
            missing = {u for u in unknown if u not in found}
            if missing and (self._deleted is None or await self._deleted(missing) != missing):
                return False
            for user_id in unknown:
                self._known_users[user_id] = None
            while len(self._known_users) > KNOWN_USERS_MAX:
                self._known_users.popitem(last=False)
        return True

    # --- listing and creating ----------------------------------------------------------------

    async def visible(self, user: UserRecord) -> list[dict[str, Any]]:
        """Public rooms and every room of the user, DMs included, with their last seq."""
        ids = await self._store.public_rooms() | await self._store.user_rooms(user.id)
        rooms = await self._store.get_many(ids)
        seqs = await self._history.last_seqs(rooms)
        peers = [peer_of(r, user.id) for r in rooms if is_dm_room(r)]
        names = {u.id: u.name for u in (await self._users.users(peers)).values()}
        return [
            room.wire(
                seqs[rid], names.get(peer_of(rid, user.id), DELETED_NAME) if room.is_dm else None
            )
            for rid, room in sorted(rooms.items())
        ]

    async def create(
        self, creator: UserRecord, room_id: object, name: object, private: object
    ) -> dict[str, Any]:
        room_id = check_room_id(room_id)
        if not isinstance(private, bool):
            raise ChatError("invalid_room", "private must be true or false")
        display = room_id if name is None else clean_name(name)
        # The lobby has no record to collide with: without this, its id could be "created"
        # (as a private room, even) and its records would disagree with what it is.
        room = (
            None
            if room_id == LOBBY
            else await self._store.create(room_id, display, private, creator.id)
        )
        if room is None:
            raise ChatError("room_exists", "a room with this id exists", 409)
        await self._broker.publish(*control(creator.id, room_notice(room.id, creator, joined=True)))
        return room.wire(0)

    # --- membership --------------------------------------------------------------------------

    async def join(self, conn: Conn, room_id: object) -> tuple[Room, int]:
        """Join a public room, or a private one the user was invited to, or the user's own DM;
        return the room and the pointer from which this socket receives its messages live."""
        room, member = await self._access(conn.user.id, room_id, None)
        if room.private and not member:
            if room.is_dm:
                raise forbidden("only its two users may open a direct conversation")
            raise forbidden("this room is private: ask a member to invite you")
        if room.id == LOBBY or room.is_dm:
            return room, await self._connections.add_room(conn, room.id)
        added = await self._store.add_member(room.id, conn.user.id)
        pointer = await self._connections.add_room(conn, room.id)
        if added:
            await self._announce(conn.user, room, joined=True)
        return room, pointer

    async def leave(self, conn: Conn, room_id: object) -> None:
        room, _ = await self._access(conn.user.id, room_id, None)
        if room.id == LOBBY:
            raise forbidden("the lobby cannot be left")
        if room.is_dm:
            raise forbidden("a direct conversation cannot be left")
        removed = await self._store.remove_member(room.id, conn.user.id)
        await self._connections.remove_room(conn, room.id)
        if removed:
            await self._announce(conn.user, room, joined=False)

    async def invite(self, conn: Conn, room_id: object, user_id: object) -> None:
        room = await self.member_of(conn.user.id, room_id, conn)
        if room.id == LOBBY or room.is_dm:
            raise forbidden("nobody can be invited to this room")
        guest = await self._users.user(user_id) if isinstance(user_id, str) else None
        if guest is None:
            raise not_found("no_user", "no such user")
        if await self._store.add_member(room.id, guest.id):
            await self._announce(guest, room, joined=True)

    async def typing(self, conn: Conn, room_id: object) -> bool:
        """Tell the others in the room; at most once per 2 s per user and room (extra
        notices are dropped: False).  Never stored."""
        room = await self.member_of(conn.user.id, room_id, conn)
        if not await self._limits.once("typing", f"{conn.user.id}:{room.id}", TYPING_EVERY):
            return False
        notice = Envelope(
            "emit", "typing", {"room": room.id, "user": conn.user.public()}, skip_user=conn.user.id
        )
        if room.is_dm:
            channel = channels.user_channel(peer_of(room.id, conn.user.id))
        else:
            channel = channels.room_channel(room.id)
        await self._broker.publish(channel, encode_envelope(notice))
        return True

    async def _announce(self, user: UserRecord, room: Room, *, joined: bool) -> None:
        notice = room_notice(room.id, user, joined=joined)
        await self._broker.publish(*control(user.id, notice))
        channel = room_channel(room.id)
        if channel is not None:
            event = "joined" if joined else "left"
            shown = Envelope("emit", event, notice.notice(), skip_user=user.id)
            await self._broker.publish(channel, encode_envelope(shown))
