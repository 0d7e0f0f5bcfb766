"""``AccountStore`` in memory: users by id, accounts by email key (the key is unique), and the
name index of user search, kept on create and rename as ``ClusterAccounts`` keeps it (entries
``<lowercased name>\0<id>``; read by ``fakes/people.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import msgspec

from chat.models import Account, UserRecord


class MemoryAccounts:
    def __init__(self) -> None:
        #: Told of each new account (a lobby member from then on; set by the world).
        self.on_created: Callable[[str], None] = lambda user_id: None
        self.records: dict[str, UserRecord] = {}
        self.accounts: dict[str, Account] = {}
        self.names: set[str] = set()

    def add(self, user_id: str, name: str | None = None) -> UserRecord:
        """A user without an account (what most use-case tests need)."""
        user = UserRecord(user_id, f"{user_id}@example.com", name or user_id.title())
        self.records[user_id] = user
        self.names.add(f"{user.name.lower()}\0{user_id}")
        return user

    async def create(self, user: UserRecord, email_key: str, password_hash: str) -> bool:
        if email_key in self.accounts:
            return False
        self.records[user.id] = user
        self.accounts[email_key] = Account(user.id, password_hash)
        self.names.add(f"{user.name.lower()}\0{user.id}")
        self.on_created(user.id)  # a member of the lobby from now on
        return True

    async def account(self, email_key: str) -> Account | None:
        return self.accounts.get(email_key)

    async def set_password_hash(self, email_key: str, password_hash: str) -> None:
        self.accounts[email_key] = Account(self.accounts[email_key].user_id, password_hash)

    async def user(self, user_id: str) -> UserRecord | None:
        return self.records.get(user_id)

    async def users(self, user_ids: Iterable[str]) -> dict[str, UserRecord]:
        return {u: self.records[u] for u in user_ids if u in self.records}

    async def set_name(self, user_id: str, name: str) -> None:
        self.names.discard(f"{self.records[user_id].name.lower()}\0{user_id}")
        self.names.add(f"{name.lower()}\0{user_id}")
        self.records[user_id] = msgspec.structs.replace(self.records[user_id], name=name)

    async def create_bot(self, user: UserRecord) -> None:
        self.records[user.id] = user

    async def set_receipts(self, user_id: str, on: bool) -> None:
        self.records[user_id] = msgspec.structs.replace(self.records[user_id], receipts=on)
