"""``PeopleStore`` in memory, honest to ``chat/adapters/cluster/people.py``: blocks bounded per
user (the bound refuses only a new one), the name index (``MemoryAccounts.names``) paged by
lowercased name then id, prefixes compared on the lowercased text, ``forget`` removing
the login record only while it still names the user, blocks and deletions closing the DM gates
that ``fakes.history.MemoryHistory`` reads."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from chat.models import UserRecord, dm_room_id, is_dm_room
from fakes.accounts import MemoryAccounts
from fakes.history import MemoryHistory
from fakes.rooms import MemoryRooms


class MemoryPeople:
    def __init__(
        self,
        accounts: MemoryAccounts,
        history: MemoryHistory | None = None,
        rooms: MemoryRooms | None = None,
    ) -> None:
        """``history``: whose DM gates blocks and deletions close; ``rooms``: whose room
        lists ``close_dms`` reads (each defaults to a private one)."""
        self._accounts = accounts
        self._gates = (history or MemoryHistory()).gates
        self._rooms = rooms or MemoryRooms(accounts)
        self.blocked: dict[str, set[str]] = {}
        self._rooms.blocked = lambda user_id, other: other in self.blocked.get(user_id, ())
        self.deleted_ids: set[str] = set()

    async def block(self, user_id: str, target: str, most: int) -> bool:
        mine = self.blocked.setdefault(user_id, set())
        if target not in mine and len(mine) >= most:
            return False
        mine.add(target)
        self._gates.setdefault(dm_room_id(user_id, target), set()).add(f"b:{user_id}")
        return True

    async def unblock(self, user_id: str, target: str) -> None:
        self.blocked.get(user_id, set()).discard(target)
        self._gates.get(dm_room_id(user_id, target), set()).discard(f"b:{user_id}")

    async def blocks(self, user_id: str) -> set[str]:
        return set(self.blocked.get(user_id, ()))

    async def close_dms(self, user_id: str) -> None:
        for room in await self._rooms.user_rooms(user_id):
            if is_dm_room(room):
                self._gates.setdefault(room, set()).add("x")

    async def search(self, prefix: str, offset: int, limit: int) -> list[tuple[str, str]]:
        # Byte order of UTF-8, as ZRANGEBYLEX compares.
        low = prefix.lower()
        entries = sorted(
            (e for e in self._accounts.names if e.startswith(low)), key=lambda e: e.encode()
        )
        found = []
        for entry in entries[offset : offset + limit]:
            name, _, user_id = entry.rpartition("\0")
            found.append((user_id, name))
        return found

    async def unindex(self, user_id: str, lowered_name: str) -> None:
        self._accounts.names.discard(f"{lowered_name.lower()}\0{user_id}")

    async def reindex(self, users: Iterable[UserRecord]) -> None:
        for user in users:
            self._accounts.names.add(f"{user.name.lower()}\0{user.id}")

    async def deleted(self, user_ids: Collection[str]) -> set[str]:
        return set(user_ids) & self.deleted_ids

    async def forget(self, user: UserRecord, email_key: str) -> None:
        self.deleted_ids.add(user.id)
        account = self._accounts.accounts.get(email_key)
        if account is not None and account.user_id == user.id:
            del self._accounts.accounts[email_key]
        self._accounts.records.pop(user.id, None)
        self._accounts.names.discard(f"{user.name.lower()}\0{user.id}")
        self.blocked.pop(user.id, None)
