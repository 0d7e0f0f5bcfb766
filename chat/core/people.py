"""People: blocking other users and finding users by display name.

A block is one user's decision about another: the blocked user can no longer DM the blocker,
nor the blocker them (the store closes their DM's gate, which the history's append reads in
the same step as it stores: refused with a plain ``forbidden`` that does not tell a block from
any other refusal; edits and reactions in their DM are refused alike, by the change script),
and the blocker's sockets receive no ``typing`` from them
(filtered on delivery: ``chat/core/typing_filter.py``).  Each change is announced on the
blocker's channel (``BlocksChanged``) so that every node drops what it cached of the blocks.

Search pages the name index (``PeopleStore.search``) and checks each page against the user
records: only a user whose current name still starts with the prefix is shown (an entry left
behind by racing renames is dropped from the index when met), never a deleted user (no
record), and never an email (``{id, name}`` only).
"""

from __future__ import annotations

import unicodedata
from typing import Any, ClassVar

from chat.core.controls import Control, control
from chat.errors import ChatError, invalid_request, not_found
from chat.models import DELETED_NAME, is_user_id
from chat.ports import AccountStore, Broker, PeopleStore

__all__ = ["DELETED_NAME", "BlocksChanged", "People", "clean_prefix"]


class BlocksChanged(Control, frozen=True):
    """The user blocked or unblocked someone: nodes following the user's channel forget the
    blocks they cached for the user's sockets (``TypingFilter``)."""

    ACTION: ClassVar[str] = "blocks"
    target: str
    on: bool


def clean_prefix(prefix: str) -> str:
    """The prefix as the index spells names: trimmed, lowercased, without control characters
    (a name never holds one); at least one character left."""
    kept = "".join(c for c in prefix if unicodedata.category(c) not in ("Cc", "Cf", "Cs"))
    cleaned = kept.strip().lower()
    if not cleaned:
        raise invalid_request("prefix needs at least one visible character")
    return cleaned


class People:
    def __init__(
        self, store: PeopleStore, users: AccountStore, broker: Broker, *, blocks_max: int
    ) -> None:
        self._store = store
        self._users = users
        self._broker = broker
        self._blocks_max = blocks_max

    # --- blocking ------------------------------------------------------------------------

    async def block(self, user_id: str, target: str) -> None:
        if target == user_id:
            raise invalid_request("you cannot block yourself")
        if not is_user_id(target) or await self._users.user(target) is None:
            raise not_found("no_user", "no such user")
        if not await self._store.block(user_id, target, self._blocks_max):
            raise ChatError("too_many", f"at most {self._blocks_max} users can be blocked", 403)
        await self._broker.publish(*control(user_id, BlocksChanged(target, True)))

    async def unblock(self, user_id: str, target: str) -> None:
        """Unblocking a user who is not blocked (or does not exist) changes nothing."""
        await self._store.unblock(user_id, target)
        await self._broker.publish(*control(user_id, BlocksChanged(target, False)))

    async def blocks(self, user_id: str) -> list[dict[str, str]]:
        """The users blocked, by name.  A deleted one is no longer shown, and no longer
        counts against the bound (dropped here, when met)."""
        ids = await self._store.blocks(user_id)
        found = await self._users.users(ids)
        gone = [u for u in ids if u not in found]
        for target in await self._store.deleted(gone) if gone else ():
            await self._store.unblock(user_id, target)
        return sorted(
            (u.public() for u in found.values()), key=lambda u: (u["name"].lower(), u["id"])
        )

    # --- search --------------------------------------------------------------------------

    async def search(self, prefix: str, offset: int, limit: int) -> dict[str, Any]:
        """``users: [{id, name}]`` whose display name starts with ``prefix`` (ignoring case),
        by name, and ``has_more``."""
        wanted = clean_prefix(prefix)
        entries = await self._store.search(wanted, offset, limit + 1)
        has_more = len(entries) > limit
        entries = entries[:limit]
        records = await self._users.users(user_id for user_id, _ in entries)
        shown = []
        for user_id, indexed in entries:
            record = records.get(user_id)
            if record is not None and record.name.lower() == indexed:
                shown.append(record.public())
            else:
                # Deleted, or stale (left behind by racing renames: the current name has its
                # own entry): never shown again.
                await self._store.unindex(user_id, indexed)
        return {"users": shown, "has_more": has_more}
