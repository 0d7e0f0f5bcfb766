"""Roles per room (owner, admin, member) and the restrictions they manage (bans, mutes, member
limits), as every other use case consults them.

Read from the store of record at each decision, like membership (``rooms.py``): nothing a
socket cached grants a role.  The rules themselves (who may act on whom) are checked by the
store with the action, atomically (``RoleStore.moderate``); what is here decides what a read
shows and what a join, an invite, a send or a delete may do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping

from chat.errors import ChatError, moderation_refusal
from chat.models import Room
from chat.ports import RoleStore, RoomStore

OWNER, ADMIN, MEMBER = "owner", "admin", "member"
MODERATORS = (OWNER, ADMIN)
#: Rooms without roles: everyone is in the lobby, a DM has its two users only.
_LOBBY = "lobby"


def unmanaged(room: Room) -> bool:
    """The lobby and DMs: no roles, no moderation, no member limit."""
    return room.is_dm or room.id == _LOBBY


def effective_role(stored: Mapping[str, str], room: Room, user_id: str) -> str:
    """The user's role from the room's stored roles.  Rooms created before roles existed
    list nobody: their creator counts as owner (the first action writes it down)."""
    if unmanaged(room):
        return MEMBER
    role = stored.get(user_id)
    if role is not None:
        return role
    if user_id == room.created_by and OWNER not in stored.values():
        return OWNER
    return MEMBER


def check_limit(member_limit: object, most: int) -> int:
    """A room's member limit: absent (0), or 1 to the deployment's bound (``most``, 0: none)."""
    if member_limit is None:
        return 0
    if (
        not isinstance(member_limit, int) or isinstance(member_limit, bool)
        or member_limit < 1 or (most and member_limit > most)
    ):  # fmt: skip
        raise ChatError("invalid_room", f"member_limit must be 1 to {most or 'any'}")
    return member_limit


class RoomRoles:
    def __init__(self, store: RoleStore, rooms: RoomStore, *, members_max: int) -> None:
        self.store = store
        self._rooms = rooms
        self.members_max = members_max

    async def role(self, user_id: str, room: Room) -> str:
        """The user's role; a service admin is an owner of every room but DMs (in the lobby,
        which has no moderation, that lets a bot delete any message)."""
        if room.is_dm:
            return MEMBER
        stored, admin = await asyncio.gather(
            self.store.roles([] if unmanaged(room) else [room.id]),
            self.store.service_admin(user_id),
        )
        return OWNER if admin else effective_role(stored.get(room.id, {}), room, user_id)

    async def roles_of(self, user_id: str, rooms: Mapping[str, Room]) -> dict[str, str]:
        """The user's role in each room (sent together: one round trip per master)."""
        managed = [r for r, room in rooms.items() if not unmanaged(room)]
        stored, admin = await asyncio.gather(
            self.store.roles(managed), self.store.service_admin(user_id)
        )
        return {
            rid: OWNER
            if admin and not room.is_dm
            else effective_role(stored.get(rid, {}), room, user_id)
            for rid, room in rooms.items()
        }

    async def member_roles(self, room: Room, user_ids: Collection[str]) -> dict[str, str]:
        if unmanaged(room):
            return dict.fromkeys(user_ids, MEMBER)
        stored = (await self.store.roles([room.id]))[room.id]
        return {u: effective_role(stored, room, u) for u in user_ids}

    async def muted(self, room_id: str, user_id: str) -> bool:
        """Whether a mute of the user in the room (not the lobby, not a DM) is in force."""
        return await self.store.restricted(room_id, user_id, "mute") is not None

    async def banned(self, room: Room, user_id: str) -> bool:
        return (
            not unmanaged(room) and await self.store.restricted(room.id, user_id, "ban") is not None
        )

    async def check_entry(self, room: Room, user_id: str) -> None:
        """Before a user becomes a member: not banned, and the room not full."""
        if unmanaged(room):
            return
        banned, count = await asyncio.gather(
            self.store.restricted(room.id, user_id, "ban"), self._rooms.member_count(room.id)
        )
        if banned is not None:
            raise moderation_refusal("banned")
        # The early answer; joins racing for the last place both pass it, and the add itself
        # (``RoomStore.add_member``, counted and added in one step) refuses all but one.
        if count >= self.limit(room):
            raise moderation_refusal("room_full")

    def limit(self, room: Room) -> int:
        return min(room.member_limit or self.members_max, self.members_max)
