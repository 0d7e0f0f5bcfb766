"""Rooms: who may see and use them, and membership changes that every node follows.

A membership change is stored first, then announced twice: a control message on the user's
channel (every node where the user has sockets follows or leaves the room for them, and tells
them with ``joined``/``left``), and an event on the room's channel for the other members,
skipping the user's own sockets so that each socket hears of it once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any

from chat import channels
from chat.core.connections import Conn, Connections, room_channel
from chat.core.controls import control, room_notice
from chat.core.identity import clean_name
from chat.core.people import DELETED_NAME
from chat.core.roles import MODERATORS, OWNER, RoomRoles, check_limit, unmanaged
from chat.errors import ChatError, forbidden, moderation_refusal, not_found
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

log = logging.getLogger(__name__)

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
        roles: RoomRoles | None = None,
        *,
        deleted: Deleted | None = None,
    ) -> None:
        #: Roles, bans, mutes and member limits (absent: a node without moderation).
        self.roles = roles
        #: Which users' accounts were deleted: they existed, so their DMs stay readable.
        self._deleted = deleted
        self._limits = limits
        self._store = store
        self._users = users
        self._history = history
        self._broker = broker
        self._connections = connections
        self._known_users: OrderedDict[str, None] = OrderedDict()

    @property
    def store(self) -> RoomStore:
        return self._store

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

    async def sender_of(self, user_id: str, room_id: object, conn: Conn | None = None) -> Room:
        """A room the user belongs to and is not muted in (who may send, edit, react)."""
        if self.roles is None or room_id == LOBBY or not is_room_id(room_id):
            return await self.member_of(user_id, room_id, conn)  # no mutes there
        # Read together (one slot: one round trip), the send's hot path.
        room, muted = await asyncio.gather(
            self.member_of(user_id, room_id, conn), self.roles.muted(room_id, user_id)
        )
        if muted:
            raise moderation_refusal("muted")
        return room

    async def access(
        self, user_id: str, room_id: object, conn: Conn | None = None
    ) -> tuple[Room, bool]:
        """The room (``no_room`` if it does not exist) and whether the user is a member."""
        return await self._access(user_id, room_id, conn)

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
        the other user; its DM gate refuses new messages to it: ``History.append``).
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
        """Public rooms and every room of the user, DMs included, with their last seq.  A
        public room the user is not in has no ``role`` (a service admin's: ``owner``, of every
        room)."""
        mine = await self._store.user_rooms(user.id)
        ids = await self._store.public_rooms() | mine
        rooms = await self._store.get_many(ids)
        seqs = await self._history.last_seqs(rooms)
        peers = [peer_of(r, user.id) for r in rooms if is_dm_room(r)]
        names = {u.id: u.name for u in (await self._users.users(peers)).values()}
        roles = await self.roles.roles_of(user.id, rooms) if self.roles is not None else {}
        shown = {r: role for r, role in roles.items() if r in mine or role == OWNER}
        return [
            room.wire(
                seqs[rid], names.get(peer_of(rid, user.id), DELETED_NAME) if room.is_dm else None,
                shown.get(rid),
            )
            for rid, room in sorted(rooms.items())
        ]  # fmt: skip

    async def shown_name(self, room: Room, user_id: str) -> str | None:
        """The name ``user_id`` sees for ``room`` where it is not the room's own: a DM is
        called by the other user's current name (as in ``session`` and the listing)."""
        if not room.is_dm:
            return None
        peer = peer_of(room.id, user_id)
        found = await self._users.users([peer])
        return found[peer].name if peer in found else DELETED_NAME

    async def create(
        self, creator: UserRecord, room_id: object, name: object, private: object,
        managed: object = False, member_limit: object = None,
    ) -> dict[str, Any]:  # fmt: skip
        room_id = check_room_id(room_id)
        if not isinstance(private, bool) or not isinstance(managed, bool):
            raise ChatError("invalid_room", "private and managed must be true or false")
        limit = check_limit(member_limit, self.roles.members_max if self.roles else 0)
        display = room_id if name is None else clean_name(name)
        # The lobby has no record to collide with: without this, its id could be "created"
        # (as a private room, even) and its records would disagree with what it is.
        room = (
            None
            if room_id == LOBBY
            else await self._store.create(
                room_id, display, private or managed, creator.id, managed=managed,
                member_limit=limit,
            )
        )  # fmt: skip
        if room is None:
            raise ChatError("room_exists", "a room with this id exists", 409)
        await self._broker.publish(*control(creator.id, room_notice(room.id, creator, joined=True)))
        return room.wire(0, role=OWNER)

    # --- membership --------------------------------------------------------------------------

    async def join(self, conn: Conn, room_id: object) -> tuple[Room, int]:
        """Join a public room, or a private one the user was invited to, or the user's own DM;
        return the room and the pointer from which this socket receives its messages live."""
        room, member = await self._access(conn.user.id, room_id, None)
        if room.private and not member:
            if room.is_dm:
                raise forbidden("only its two users may open a direct conversation")
            if self.roles is not None and await self.roles.banned(room, conn.user.id):
                raise moderation_refusal("banned")  # they know the room: they were in it
            raise forbidden("this room is private: ask a member to invite you")
        if room.id == LOBBY or room.is_dm:
            return room, await self._connections.add_room(conn, room.id)
        if not member and self.roles is not None:
            await self.roles.check_entry(room, conn.user.id)
        added = await self._admit(room, conn.user.id)
        try:
            pointer = await self._connections.add_room(conn, room.id)
        finally:  # announced even if following failed: a retry finds nothing to add
            if added:
                await self._announce(conn.user, room, joined=True)
        return room, pointer

    async def leave(self, conn: Conn, room_id: object) -> None:
        room, _ = await self._access(conn.user.id, room_id, None)
        if room.id == LOBBY:
            raise forbidden("the lobby cannot be left")
        if room.is_dm:
            raise forbidden("a direct conversation cannot be left")
        if self.roles is not None:
            await self._may_leave(room, conn.user.id)
        removed = await self._store.remove_member(room.id, conn.user.id)
        try:
            await self._connections.remove_room(conn, room.id)
        finally:  # as in ``join``: a retry finds nothing to remove
            if removed:
                await self._announce(conn.user, room, joined=False)

    async def _may_leave(self, room: Room, user_id: str) -> None:
        """The owner hands the room over first, unless nobody else is in it: then the room
        is left without members and without roles (its creator, back, owns it again)."""
        assert self.roles is not None
        roles, count = await asyncio.gather(
            self.roles.member_roles(room, [user_id]), self._store.member_count(room.id)
        )
        if roles[user_id] == OWNER and count > 1:
            raise moderation_refusal("owner_must_transfer")

    async def invite(self, conn: Conn, room_id: object, user_id: object) -> None:
        """A member adds a user; in a managed room only its owners and admins do (and a
        service admin, member or not)."""
        room = await self._inviter(conn, room_id)
        guest = await self._users.user(user_id) if isinstance(user_id, str) else None
        if guest is None:
            raise not_found("no_user", "no such user")
        if self.roles is not None and not await self._store.is_member(room.id, guest.id):
            await self.roles.check_entry(room, guest.id)
        if await self._admit(room, guest.id):
            await self._announce(guest, room, joined=True)

    async def _inviter(self, conn: Conn, room_id: object) -> Room:
        room, member = await self._access(conn.user.id, room_id, conn)
        if room.id == LOBBY or room.is_dm:
            raise forbidden("nobody can be invited to this room")
        role = None  # read where it decides: a plain room's members need none
        if self.roles is not None and (room.managed or not member):
            role = await self.roles.role(conn.user.id, room)
        if not member and role != OWNER:  # a service admin: an owner of every room
            raise forbidden("join the room first" if not room.private else "not a member")
        if room.managed and role not in MODERATORS:
            raise moderation_refusal("forbidden")
        return room

    async def _admit(self, room: Room, user_id: str) -> bool:
        """Add a member (True if new).  Hazard: a ban stored between the check before this
        and the add would be undone by the add landing after the ban's removal; the ban is
        read again once added (a ban is stored before its removal runs, so one of the two
        sees the other) and the user removed again."""
        # The member limit of a managed room is enforced by the add itself (the count in
        # ``check_entry`` is only the early answer: joins racing for the last place both pass it).
        roles = None if unmanaged(room) else self.roles
        added = await self._store.add_member(room.id, user_id, roles.limit(room) if roles else 0)
        if not added or roles is None:
            return added
        if await roles.store.restricted(room.id, user_id, "ban") is not None:
            await self._store.remove_member(room.id, user_id)
            raise moderation_refusal("banned")
        return added

    async def expel(self, room: Room, user: UserRecord) -> None:
        """Remove a member (a kick or a ban): their sockets stop following the room on every
        node and get ``left``, as after a ``leave``; the other members get ``left``."""
        if await self._store.remove_member(room.id, user.id):
            await self._announce(user, room, joined=False)

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

    async def welcome(self, user: UserRecord) -> None:
        """A new account is a member of the lobby from its creation: the lobby's sockets get
        ``joined`` (members lists update live).  Best effort: the account exists either way,
        and a failed publish must not fail the registration."""
        shown = Envelope("emit", "joined", room_notice(LOBBY, user, joined=True).notice())
        try:
            await self._broker.publish(channels.room_channel(LOBBY), encode_envelope(shown))
        except Exception:
            log.warning("lobby announcement of %s failed", user.id, exc_info=True)

    async def _announce(self, user: UserRecord, room: Room, *, joined: bool) -> None:
        """Tell the user's sockets and the room's other members, both even if one fails: the
        change is stored, and a retry finds nothing to change and tells nobody."""
        notice = room_notice(room.id, user, joined=joined)
        sends = [self._broker.publish(*control(user.id, notice))]
        channel = room_channel(room.id)
        if channel is not None:
            event = "joined" if joined else "left"
            shown = Envelope("emit", event, notice.notice(), skip_user=user.id)
            sends.append(self._broker.publish(channel, encode_envelope(shown)))
        for outcome in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
