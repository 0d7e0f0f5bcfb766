"""``History`` in memory, honest to ``chat/adapters/cluster/history.py``: gap-free seqs per
room from 1, the stamp from the store's clock, ids ``"<seq>.<random>"``, and a repeated
``(room, sender, token)`` answered with the first message (and False) for as long as its record
lives (refreshed by each retry); a DM whose gate holds anything is refused first.  Reads show
plain messages in their current state, as the Redis read script does; the state is written by
``fakes.changes.MemoryChanges``."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from chat.errors import forbidden, not_found
from chat.models import Message, UserRef, is_dm_room, with_state
from fakes.clock import Clock

IDEMPOTENCY_S = 10 * 60  # as IDEMPOTENCY_MS of the Redis adapter
OWN_MAX = 128  # as the Redis adapter's
NAMESAKES_MAX, MENTIONS_MAX = 20, 50

#: A room's members as the append's mention lookup sees them: id -> display name.
Roster = Callable[[str], dict[str, str]]


class MemoryHistory:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.logs: dict[str, list[Message]] = {}  # per room, index = seq - 1
        self._retries: dict[tuple[str, str, str], tuple[Message, float]] = {}
        #: Unread counting, as the append script keeps it (see ``chat/adapters/cluster/
        #: reads.py``): plain messages per room, ``n`` per (room, seq), and per (room, user)
        #: the newest ``OWN_MAX`` seqs of their own messages and of mentions of them.
        self.mcount: dict[str, int] = {}
        self.n: dict[tuple[str, int], int] = {}
        self.own: dict[tuple[str, str], list[int]] = {}
        self.mentioned: dict[tuple[str, str], list[int]] = {}
        #: Set by the world: the room's members (the lobby: everyone), for mentions.
        self.roster: Roster = lambda room: {}
        #: Per room, per target seq: the overlay (``{text?, edited_ts?, deleted?, reactions?,
        #: v}``) and who reacted with what (``"<emoji>\n<user>"``), as the Redis keys hold.
        self.state: dict[str, dict[int, dict[str, Any]]] = {}
        self.reactors: dict[tuple[str, int], set[str]] = {}
        #: DM gates (``keys.room_gate_key``), written by ``fakes.people.MemoryPeople``: per
        #: room, ``b:<user>`` for a block, ``x`` for a deleted account.
        self.gates: dict[str, set[str]] = {}

    async def append(
        self,
        message_id: str,
        room: str,
        sender: UserRef,
        text: str,
        cid: str | None,
        token: str,
        *,
        mentions: Sequence[str] = (),
        names: Sequence[str] = (),
    ) -> tuple[Message, bool]:
        gate = self.gates.get(room)
        if gate:
            raise not_found("no_user", "no such user") if "x" in gate else forbidden()
        key = (room, sender.id, token)
        found = self._retries.get(key)
        if found is not None and found[1] > self.clock():
            self._retries[key] = (found[0], self.clock() + IDEMPOTENCY_S)
            return found[0], False
        log = self.logs.setdefault(room, [])
        seq = len(log) + 1
        ids = self._mentions(room, sender.id, mentions, names)
        message = Message(
            f"{seq}.{message_id}", room, seq, sender, self.clock.ms(), text, cid,
            mentions=ids or None,
        )  # fmt: skip
        log.append(message)
        self.mcount[room] = self.n[(room, seq)] = self.mcount.get(room, 0) + 1
        for user_id, kept in [(sender.id, self.own), *((u, self.mentioned) for u in ids)]:
            seqs = kept.setdefault((room, user_id), [])
            seqs.append(seq)
            del seqs[:-OWN_MAX]
        self._retries[key] = (message, self.clock() + IDEMPOTENCY_S)
        return message, True

    def _mentions(
        self, room: str, sender: str, explicit: Sequence[str], names: Sequence[str]
    ) -> list[str]:
        members = {} if is_dm_room(room) else self.roster(room)
        ids = [u for u in explicit if is_dm_room(room) or u in members]
        for word in names:
            ids += sorted(u for u, name in members.items() if name.lower() == word)[
                : 2 * NAMESAKES_MAX
            ]
        return [u for u in dict.fromkeys(ids) if u != sender][:MENTIONS_MAX]

    def retried(self, room: str, sender: str, token: str) -> Message | None:
        """The first result of a token still remembered (refreshed), as the scripts do."""
        found = self._retries.get((room, sender, token))
        if found is None or found[1] <= self.clock():
            return None
        self._retries[(room, sender, token)] = (found[0], self.clock() + IDEMPOTENCY_S)
        return found[0]

    def remember(self, room: str, sender: str, token: str, message: Message) -> None:
        self._retries[(room, sender, token)] = (message, self.clock() + IDEMPOTENCY_S)

    async def last_seq(self, room: str) -> int:
        return len(self.logs.get(room, ()))

    async def last_seqs(self, rooms: Collection[str]) -> dict[str, int]:
        return {room: len(self.logs.get(room, ())) for room in rooms}

    async def page(
        self,
        room: str,
        *,
        before: int | None,
        after: int | None,
        limit: int,
        viewer: str | None = None,
    ) -> tuple[list[Message], bool]:
        """Ascending.  ``after``: the first ``limit`` above it (below ``before`` if given);
        only ``before``: the last ``limit`` below it; neither: the newest ``limit``."""
        below = [m for m in self.logs.get(room, ()) if before is None or m.seq < before]
        if after is not None:
            above = [m for m in below if m.seq > after]
            return self._shown(above[:limit], viewer), len(above) > limit
        return self._shown(below[-limit:] if limit else [], viewer), len(below) > limit

    async def between(
        self, room: str, after: int, upto: int, limit: int, viewer: str | None = None
    ) -> list[Message]:
        found = [m for m in self.logs.get(room, ()) if after < m.seq <= upto][:limit]
        return self._shown(found, viewer)

    def _shown(self, entries: list[Message], viewer: str | None) -> list[Message]:
        return [self._current(m, viewer) for m in entries]

    def _current(self, entry: Message, viewer: str | None) -> Message:
        if entry.kind not in (None, "edit"):
            return entry
        target = entry.seq if entry.kind is None else entry.target_seq
        state = self.state.get(entry.room, {}).get(target or 0)
        if entry.kind is not None or state is None:
            return with_state(entry, state, [])
        rx = self.reactors.get((entry.room, entry.seq), set())
        mine = [e for e in state.get("reactions", {}) if viewer and f"{e}\n{viewer}" in rx]
        return with_state(entry, state, mine)
