"""Presence as clients use it: ``online``, ``watch``/``unwatch``, and ``members`` of a room.

Watching follows the user's presence channel on this node (reference-counted like every
channel) and puts the socket in the local room ``presence:<id>``.  The channel is followed
*before* the current state is read, so no transition can fall between the two.
"""

from __future__ import annotations

import asyncio
from typing import Any

from chat import channels
from chat.core.connections import Conn, Connections
from chat.core.presence import Presence
from chat.core.rooms import Rooms
from chat.errors import ChatError
from chat.ports import RoomStore

WATCH_MAX = 1000


class MemberPresence:
    def __init__(
        self,
        presence: Presence,
        connections: Connections,
        rooms: Rooms,
        room_store: RoomStore,
    ) -> None:
        self._presence = presence
        self._connections = connections
        self._rooms = rooms
        self._room_store = room_store

    async def online(self, user_ids: list[str]) -> dict[str, bool]:
        return await self._presence.online(list(dict.fromkeys(user_ids)))

    async def watch(self, conn: Conn, user_ids: list[str]) -> dict[str, bool]:
        new = [u for u in dict.fromkeys(user_ids) if u not in conn.watching]
        if len(conn.watching) + len(new) > WATCH_MAX:
            raise ChatError("too_many", f"a socket may watch at most {WATCH_MAX} users")
        conn.watching = conn.watching.union(new)  # at once: concurrent watches meet the cap
        followed = await asyncio.gather(
            *(
                self._connections.follow_channel(
                    conn, channels.presence_channel(u), channels.presence_channel(u)
                )
                for u in new
            ),
            return_exceptions=True,
        )
        failed = [u for u, r in zip(new, followed, strict=True) if isinstance(r, BaseException)]
        if failed:  # not followed, so not watched: a retry follows them
            conn.watching = conn.watching.difference(failed)
            raise next(r for r in followed if isinstance(r, BaseException))
        return await self.online(user_ids)

    async def unwatch(self, conn: Conn, user_ids: list[str]) -> None:
        gone = [u for u in dict.fromkeys(user_ids) if u in conn.watching]
        conn.watching = conn.watching.difference(gone)
        await asyncio.gather(
            *(
                self._connections.drop_channel(
                    conn, channels.presence_channel(u), channels.presence_channel(u)
                )
                for u in gone
            )
        )

    async def members(self, conn: Conn, room_id: str, offset: int, limit: int) -> dict[str, Any]:
        """Members online first (then by name), a page of them, and how many there are."""
        room = await self._rooms.readable(conn.user.id, room_id, conn)
        # Paged in the store (each room's roster is kept in this order): the cost is the
        # page's, not the room's; the lobby holds every user.
        page, count = await self._room_store.members_page(room.id, offset, limit)
        if self._rooms.roles is not None:
            roles = await self._rooms.roles.member_roles(room, [m["id"] for m in page])
            page = [{**m, "role": roles[m["id"]]} for m in page]
        return {"members": page, "count": count, "has_more": offset + limit < count}
