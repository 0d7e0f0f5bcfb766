"""Blocks, the display-name index and deleted accounts in the Redis Cluster (``PeopleStore``).

- Blocks: a set per user, ``{u:<id>}:blocks``, bounded by a script (the check and the add in
  one step, so that two nodes cannot both add the last one allowed), and a field of the pair's
  DM gate (``keys.room_gate_key``), which the append script reads: that is what refuses DMs.
- Deleted accounts close the gate of each of their DMs (``close_dms``).
- The name index: one sorted set, ``{g}:names``, of ``<lowercased name>\\0<user id>``, all
  scores 0, so a prefix is a ``ZRANGEBYLEX`` range.  ``ClusterAccounts`` keeps it on register
  and rename; an entry can outlive a rename racing another rename (the two index writes are
  not one step with the record's), so the use case checks each page against the user records
  and drops what is stale (``chat/core/people.py``).
- Deleted accounts: ``{g}:deleted_users``, read by the history's read paths.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Iterable
from typing import Any

from chat import keys
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.scripts import Script
from chat.models import UserRecord, dm_room_id, is_dm_room

# KEYS: blocks.  ARGV: target, most.  1 if blocked (now or before), 0 if at the bound.
BLOCK = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
"""

# KEYS: account.  ARGV: user id.  The login record goes only if it is still this user's: the
# email may have been registered again by someone else after an earlier, interrupted run.
DROP_ACCOUNT = """
if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

#: Above every byte of UTF-8 text: ``[prefix`` .. ``[prefix\xff`` is every name it starts.
TOP = b"\xff"


def name_entry(user_id: str, name: str) -> str:
    """The index entry of a user (ids never contain NUL, and names are cleaned of it)."""
    return f"{name.lower()}\0{user_id}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ClusterPeople:
    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._block = Script(cluster, BLOCK)
        self._drop_account = Script(cluster, DROP_ACCOUNT)

    async def block(self, user_id: str, target: str, most: int) -> bool:
        key = keys.user_blocks_key(user_id)
        if not await self._block([key], [target, most], what="block"):
            return False
        # The list first: it holds the bound.  The gate is what refuses the DMs; a failure
        # between the two is retried by the user (both writes are idempotent).
        await self._gate("HSET", user_id, target)
        return True

    async def unblock(self, user_id: str, target: str) -> None:
        # The gate first: a failure between the two leaves the block listed, which the user
        # sees and lifts again (the other order left DMs refused by a block nobody listed).
        await self._gate("HDEL", user_id, target)
        key = keys.user_blocks_key(user_id)
        await self._cluster.send(key, "SREM", key, target, what="unblock")

    async def _gate(self, command: str, user_id: str, target: str) -> None:
        """Set (``HSET``) or clear (``HDEL``) the user's block in the pair's DM gate."""
        gate, field = keys.room_gate_key(dm_room_id(user_id, target)), f"b:{user_id}"
        args = (field, 1) if command == "HSET" else (field,)
        await self._cluster.send(gate, command, gate, *args, durable=True, what="dm gate")

    async def close_dms(self, user_id: str) -> None:
        # Read after the user record is gone: a DM listed later was refused (DM_LINK checks
        # the record in the same step), so every DM of the user is in this read.
        listed = keys.user_rooms_key(user_id)
        rooms = [_text(r) for r in await self._cluster.send(listed, "SMEMBERS", listed)]
        await self._close([r for r in rooms if is_dm_room(r)])

    async def _close(self, dm_rooms: Collection[str]) -> None:
        await asyncio.gather(
            *(self._cluster.send(keys.room_gate_key(r), "HSET", keys.room_gate_key(r), "x", 1,
                                 durable=True, what="close dm")
              for r in dm_rooms)
        )  # fmt: skip

    async def restore_gates(self, user_ids: Iterable[str]) -> None:
        """The gates of these users' blocks, stored before DM gates existed (``chat users
        reindex``, with its scan of the users)."""
        for user_id in user_ids:
            for target in await self.blocks(user_id):
                await self._gate("HSET", user_id, target)

    async def close_deleted_dms(self) -> None:
        """The gates of every deleted user's DMs, for deletions made before DM gates existed
        (``chat users reindex``)."""
        deleted = keys.deleted_users_key()
        for raw in await self._cluster.send(deleted, "SMEMBERS", deleted):
            await self.close_dms(_text(raw))

    async def blocks(self, user_id: str) -> set[str]:
        key = keys.user_blocks_key(user_id)
        return {_text(u) for u in await self._cluster.send(key, "SMEMBERS", key, what="blocks")}

    async def search(self, prefix: str, offset: int, limit: int) -> list[tuple[str, str]]:
        key, low = keys.user_names_key(), prefix.lower().encode()
        found = await self._cluster.send(
            key, "ZRANGEBYLEX", key, b"[" + low, b"[" + low + TOP, "LIMIT", offset, limit,
            what="search",
        )  # fmt: skip
        entries = []
        for raw in found:
            name, _, user_id = _text(raw).rpartition("\0")
            entries.append((user_id, name))
        return entries

    async def unindex(self, user_id: str, lowered_name: str) -> None:
        key = keys.user_names_key()
        await self._cluster.send(key, "ZREM", key, name_entry(user_id, lowered_name), what="index")

    async def reindex(self, users: Iterable[UserRecord]) -> None:
        key = keys.user_names_key()
        args: list[Any] = []
        for user in users:
            args += [0, name_entry(user.id, user.name)]
        if args:
            await self._cluster.send(key, "ZADD", key, *args, what="reindex")

    async def user_ids(self) -> AsyncIterator[str]:
        """Every user with a record (``chat users reindex``: a scan of every master)."""
        prefix, suffix = keys.user_key("\0").split("\0")
        async for raw in self._cluster.scan(f"{prefix}*{suffix}"):
            key = _text(raw)
            if key.startswith(prefix) and key.endswith(suffix):
                yield key[len(prefix) : -len(suffix)]

    async def deleted(self, user_ids: Collection[str]) -> set[str]:
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return set()
        key = keys.deleted_users_key()
        flags = await self._cluster.send(key, "SMISMEMBER", key, *ids, what="deleted?")
        return {u for u, flag in zip(ids, flags, strict=True) if flag}

    async def forget(self, user: UserRecord, email_key: str) -> None:
        deleted = keys.deleted_users_key()
        # Durable: once a deletion was answered, a failover must not bring the account back.
        await self._cluster.send(deleted, "SADD", deleted, user.id, durable=True, what="delete")
        await self._drop_account(
            [keys.account_key(email_key)], [user.id], durable=True, what="drop account"
        )
        user_key, blocks = keys.user_key(user.id), keys.user_blocks_key(user.id)
        names = keys.user_names_key()
        await self._cluster.send_all(
            [
                (user_key, ("DEL", user_key, blocks)),
                (names, ("ZREM", names, name_entry(user.id, user.name))),
            ],
            "forget user",
        )
