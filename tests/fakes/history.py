"""``History`` in memory, honest to ``chat/adapters/cluster_history.py``: gap-free seqs per room
from 1, the stamp from the store's clock, and a repeated ``(room, sender, token)`` answered with
the first message (and False) for as long as its record lives (refreshed by each retry)."""

from __future__ import annotations

from collections.abc import Collection

from chat.models import Message, UserRef
from fakes.clock import Clock

IDEMPOTENCY_S = 10 * 60  # as IDEMPOTENCY_MS of the Redis adapter


class MemoryHistory:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.logs: dict[str, list[Message]] = {}  # per room, index = seq - 1
        self._retries: dict[tuple[str, str, str], tuple[Message, float]] = {}

    async def append(
        self, message_id: str, room: str, sender: UserRef, text: str, cid: str | None, token: str
    ) -> tuple[Message, bool]:
        key = (room, sender.id, token)
        found = self._retries.get(key)
        if found is not None and found[1] > self.clock():
            self._retries[key] = (found[0], self.clock() + IDEMPOTENCY_S)
            return found[0], False
        log = self.logs.setdefault(room, [])
        message = Message(message_id, room, len(log) + 1, sender, text, self.clock.ms(), cid)
        log.append(message)
        self._retries[key] = (message, self.clock() + IDEMPOTENCY_S)
        return message, True

    async def last_seq(self, room: str) -> int:
        return len(self.logs.get(room, ()))

    async def last_seqs(self, rooms: Collection[str]) -> dict[str, int]:
        return {room: len(self.logs.get(room, ())) for room in rooms}

    async def page(
        self, room: str, *, before: int | None, after: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """Ascending.  ``after``: the first ``limit`` above it (below ``before`` if given);
        only ``before``: the last ``limit`` below it; neither: the newest ``limit``."""
        below = [m for m in self.logs.get(room, ()) if before is None or m.seq < before]
        if after is not None:
            above = [m for m in below if m.seq > after]
            return above[:limit], len(above) > limit
        return below[-limit:] if limit else [], len(below) > limit

    async def between(self, room: str, after: int, upto: int, limit: int) -> list[Message]:
        return [m for m in self.logs.get(room, ()) if after < m.seq <= upto][:limit]
