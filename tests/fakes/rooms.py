"""``RoomStore`` in memory, honest to ``chat/adapters/cluster_rooms.py``: the lobby needs no
record and has everyone; a DM room needs none either (its two members are in its id); the
bounds on rooms a user is in (DMs and the lobby aside) and on rooms a user ever created are
``too_many``; a taken id costs nothing.  Member pages are online first, then by name, then id
(names from the account store, presence from the presence state)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from msgspec.structs import replace

from chat.errors import ChatError, forbidden, moderation_refusal, not_found
from chat.models import DELETED_NAME, Room, dm_members, is_dm_room
from fakes.accounts import MemoryAccounts
from fakes.clock import Clock
from fakes.presence import PresenceState

LOBBY = Room("lobby", "Lobby", private=False)


class MemoryRooms:
    def __init__(
        self,
        accounts: MemoryAccounts,
        presence: PresenceState | None = None,
        *,
        rooms_per_user: int = 0,
        created_per_user: int = 0,
        clock: Clock | None = None,
    ) -> None:
        self._accounts = accounts
        #: Whether the first user blocked the second (``fakes.people.MemoryPeople`` sets it).
        self.blocked: Callable[[str, str], bool] = lambda user_id, other: False
        self._clock = clock or Clock()
        self._presence = presence or PresenceState()
        self._rooms_max = rooms_per_user  # 0: no bound
        self._created_max = created_per_user
        self.rooms: dict[str, Room] = {}
        self.members: dict[str, set[str]] = {}
        self.lists: dict[str, set[str]] = {}  # user -> rooms (DMs included, not the lobby)
        self.created: dict[str, int] = {}
        #: Per room, the users with a role (``owner``/``admin``), as ``room_roles_key``.
        self.roles: dict[str, dict[str, str]] = {}
        #: Told of every membership change (room, user, joined): the read positions the
        #: roster's scripts keep beside the members (set by the world).
        self.on_member: Callable[[str, str, bool], None] = lambda room, user, joined: None

    async def create(
        self, room_id: str, name: str, private: bool, creator: str, *, managed: bool = False,
        member_limit: int = 0,
    ) -> Room | None:  # fmt: skip
        if self._rooms_max and self._joined(creator) >= self._rooms_max:
            raise self._too_many()
        if self._created_max and self.created.get(creator, 0) >= self._created_max:
            raise ChatError("too_many", f"a user may create at most {self._created_max} rooms", 403)
        if room_id in self.rooms:
            return None
        self.created[creator] = self.created.get(creator, 0) + 1
        room = Room(
            room_id, name, private or managed, creator, int(self._clock()), managed, member_limit
        )
        self.rooms[room_id] = room
        self.members[room_id] = {creator}
        self.roles[room_id] = {creator: "owner"}
        self.lists.setdefault(creator, set()).add(room_id)
        return room

    async def ensure_dm(self, room_id: str) -> None:
        first, second = dm_members(room_id)
        refused = []
        for user_id, other in {(first, second), (second, first)}:
            if user_id not in self._accounts.records:
                refused.append(not_found("no_user", "no such user"))
            elif self.blocked(user_id, other):
                refused.append(forbidden())
        if refused:  # listed for neither (as before the call)
            raise min(refused, key=lambda e: e.code != "no_user")
        for user_id in (first, second):
            self.lists.setdefault(user_id, set()).add(room_id)

    async def get(self, room_id: str) -> Room | None:
        return (await self.get_many([room_id])).get(room_id)

    async def get_many(self, room_ids: Iterable[str]) -> dict[str, Room]:
        found: dict[str, Room] = {}
        for room_id in room_ids:
            if room_id == LOBBY.id:
                found[room_id] = LOBBY
            elif is_dm_room(room_id):
                found[room_id] = Room(room_id, "", True, created_by=dm_members(room_id)[0])
            elif room_id in self.rooms:
                found[room_id] = self.rooms[room_id]
        return found

    async def add_member(self, room_id: str, user_id: str, most: int = 0) -> bool:
        listed = self.lists.setdefault(user_id, set())
        if room_id not in listed and self._rooms_max and self._joined(user_id) >= self._rooms_max:
            raise self._too_many()
        members = self.members.setdefault(room_id, set())
        if most and user_id not in members and len(members) >= most:
            raise moderation_refusal("room_full")
        listed.add(room_id)
        added = user_id not in members
        members.add(user_id)
        if added:
            self.on_member(room_id, user_id, True)
        return added

    async def remove_member(self, room_id: str, user_id: str) -> bool:
        self.lists.get(user_id, set()).discard(room_id)
        members = self.members.get(room_id, set())
        removed = user_id in members
        members.discard(user_id)
        if removed:
            self.on_member(room_id, user_id, False)
        self.roles.get(room_id, {}).pop(user_id, None)
        return removed

    async def set_settings(
        self, room_id: str, managed: bool | None, member_limit: int | None
    ) -> None:
        room = self.rooms[room_id]
        if managed is not None:
            room = replace(room, managed=managed, private=room.private or managed)
        if member_limit is not None:
            room = replace(room, member_limit=member_limit)
        self.rooms[room_id] = room

    async def member_count(self, room_id: str) -> int:
        return len(self.members.get(room_id, ()))

    async def is_member(self, room_id: str, user_id: str) -> bool:
        if room_id == LOBBY.id:
            return True
        if is_dm_room(room_id):
            return user_id in dm_members(room_id)
        return user_id in self.members.get(room_id, ())

    async def members_page(
        self, room_id: str, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        if room_id == LOBBY.id:
            ids = set(self._accounts.records)
        elif is_dm_room(room_id):
            ids = set(dm_members(room_id))
        else:
            ids = self.members.get(room_id, set())
        names = {u: r.name for u, r in (await self._accounts.users(ids)).items()}
        rows = [
            # A DM member without a record is a deleted account.
            {"id": u, "name": names.get(u, DELETED_NAME), "online": self._presence.is_online(u)}
            for u in ids
        ]
        rows.sort(key=lambda r: (not r["online"], r["name"].lower(), r["id"]))
        return rows[offset : offset + limit], len(rows)

    async def user_rooms(self, user_id: str) -> set[str]:
        listed = await self.listed_rooms(user_id)
        return {r for r in listed if is_dm_room(r) or await self.is_member(r, user_id)}

    async def listed_rooms(self, user_id: str) -> set[str]:
        return {LOBBY.id, *self.lists.get(user_id, ())}

    async def public_rooms(self) -> set[str]:
        return {LOBBY.id, *(r.id for r in self.rooms.values() if not r.private)}

    def _joined(self, user_id: str) -> int:
        return sum(1 for r in self.lists.get(user_id, ()) if not is_dm_room(r))

    def _too_many(self) -> ChatError:
        return ChatError("too_many", f"a user may be in at most {self._rooms_max} rooms", 403)
