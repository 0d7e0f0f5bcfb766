"""``ReadStore`` in memory, honest to ``chat/adapters/cluster/reads.py``: positions only move
forward and never beyond the room's last seq; the counts come from the counters the history's
append keeps (``MemoryHistory.mcount``, ``n``, ``own``, ``mentioned``), capped at 100."""

from __future__ import annotations

from collections.abc import Callable, Collection

from chat.models import COUNT_CAP, RoomCounts
from fakes.history import MemoryHistory

#: A room's member count as the member set has it (DMs and the lobby: see the world).
MemberCount = Callable[[str], int]


class MemoryReads:
    def __init__(self, history: MemoryHistory, member_count: MemberCount | None = None) -> None:
        self._history = history
        self._member_count = member_count or (lambda room: 0)
        self.positions_of: dict[tuple[str, str], tuple[int, int]] = {}  # -> (read_seq, n)
        #: Positions that are where a member joined, not a read: receipts do not show them.
        self.joined_at: set[tuple[str, str]] = set()

    def _counts(self, room: str, user_id: str) -> RoomCounts:
        h = self._history
        read_seq, n = self.positions_of.get((room, user_id), (0, 0))
        own = sum(1 for s in h.own.get((room, user_id), ()) if s > read_seq)
        mentions = sum(1 for s in h.mentioned.get((room, user_id), ()) if s > read_seq)
        unread = max(h.mcount.get(room, 0) - n - own, 0)
        last = len(h.logs.get(room, ()))
        return RoomCounts(last, read_seq, min(unread, COUNT_CAP), min(mentions, COUNT_CAP))

    async def mark(self, room: str, user_id: str, seq: int) -> tuple[str, RoomCounts, int]:
        before, members = self._counts(room, user_id), self._member_count(room)
        if seq > before.last_seq:
            return "beyond", before, members
        if seq <= before.read_seq:
            return "same", before, members
        below = [s for (r, s) in self._history.n if r == room and s <= seq]
        n = self._history.n[(room, max(below))] if below else 0
        self.positions_of[(room, user_id)] = (seq, n)
        self.joined_at.discard((room, user_id))
        return "moved", self._counts(room, user_id), members

    def membership(self, room: str, user_id: str, joined: bool) -> None:
        """As the roster's scripts: a new member reads from the room's newest message on; a
        member who leaves loses the position."""
        if not joined:
            self.positions_of.pop((room, user_id), None)
            self.joined_at.discard((room, user_id))
            return
        h = self._history
        last = len(h.logs.get(room, ()))
        if (room, user_id) not in self.positions_of:
            self.positions_of[(room, user_id)] = (last, h.mcount.get(room, 0))
            self.joined_at.add((room, user_id))

    async def counts(self, user_id: str, rooms: Collection[str]) -> dict[str, RoomCounts]:
        return {room: self._counts(room, user_id) for room in rooms}

    async def positions(self, room: str, user_ids: Collection[str]) -> dict[str, int]:
        return {
            u: self.positions_of[(room, u)][0]
            for u in user_ids
            if (room, u) in self.positions_of and (room, u) not in self.joined_at
        }
