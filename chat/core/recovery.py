"""Reading history: pages on demand, and what a (re)connecting client missed.

``sync`` and ``join``'s ``missed`` answer up to the socket's pointer (the last seq delivered
to it live, see ``ordering.py``): what lies above arrives as live ``message`` events, so a
client that applies the answer and then the events it receives sees every message once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from chat.core.connections import Conn, Connections
from chat.core.rooms import Rooms
from chat.errors import ChatError
from chat.models import to_wire
from chat.ports import History

PAGE_MAX = 100
#: Messages one ``sync`` answers in all: with more than 20 rooms each gets an equal share (an
#: answer of 500 rooms of 100 messages each would be tens of MB, for one token of its row).
SYNC_MAX = 2_000


def _page(messages: list[Any], has_more: bool) -> dict[str, Any]:
    return {"messages": [to_wire(m) for m in messages], "has_more": has_more}


class Recovery:
    def __init__(self, history: History, rooms: Rooms, connections: Connections) -> None:
        self._history = history
        self._rooms = rooms
        self._connections = connections

    async def page(
        self,
        user_id: str,
        room_id: object,
        *,
        before: int | None,
        after: int | None,
        limit: int,
        conn: Conn | None = None,
    ) -> dict[str, Any]:
        room = await self._rooms.readable(user_id, room_id, conn)
        messages, has_more = await self._history.page(
            room.id, before=before, after=after, limit=limit, viewer=user_id
        )
        return _page(messages, has_more)

    async def missed(
        self, room_id: str, since: int, pointer: int, viewer: str | None = None,
        limit: int = PAGE_MAX,
    ) -> dict[str, Any]:  # fmt: skip
        """Messages ``since < seq <= pointer``, the first ``limit``, and whether there are
        more (in their current state, ``my_reactions`` those of ``viewer``)."""
        messages = await self._history.between(room_id, since, pointer, limit + 1, viewer)
        return _page(messages[:limit], len(messages) > limit)

    async def sync(self, conn: Conn, known: dict[str, int]) -> dict[str, Any]:
        share = min(PAGE_MAX, max(1, SYNC_MAX // max(1, len(known))))

        async def one(room_id: str, since: int) -> dict[str, Any]:
            try:
                await self._rooms.member_of(conn.user.id, room_id, conn)
            except ChatError as exc:
                return {"messages": [], "has_more": False, "error": exc.to_wire()}
            pointer = self._connections.pointer(conn, room_id)
            return await self.missed(room_id, since, pointer, conn.user.id, share)

        answers = await asyncio.gather(*(one(r, s) for r, s in known.items()))
        return dict(zip(known, answers, strict=True))
