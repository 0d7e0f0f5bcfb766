"""``PeopleStore`` in memory, honest to ``chat/adapters/cluster/people.py``: blocks bounded per
user (the bound refuses only a new one), the name index (``MemoryAccounts.names``) paged by
lowercased name then id, prefixes compared on the lowercased text, and ``forget`` removing
the login record only while it still names the user."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from chat.models import UserRecord
from fakes.accounts import MemoryAccounts


class MemoryPeople:
    def __init__(self, accounts: MemoryAccounts) -> None:
        self._accounts = accounts
        self.blocked: dict[str, set[str]] = {}
        self.deleted_ids: set[str] = set()

    async def block(self, user_id: str, target: str, most: int) -> bool:
        mine = self.blocked.setdefault(user_id, set())
        if target not in mine and len(mine) >= most:
            return False
        mine.add(target)
        return True

    async def unblock(self, user_id: str, target: str) -> None:
        self.blocked.get(user_id, set()).discard(target)

    async def blocks(self, user_id: str) -> set[str]:
        return set(self.blocked.get(user_id, ()))

    async def blocked_either(self, a: str, b: str) -> bool:
        return b in self.blocked.get(a, ()) or a in self.blocked.get(b, ())

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
