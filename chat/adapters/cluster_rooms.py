"""Rooms and membership in the Redis Cluster.

Per room (slot ``{r:<room>}``): ``meta`` (name, private, created_by, created) and ``members``.
Per user (slot ``{u:<id>}``): ``rooms``, the rooms the user belongs to.  The two sides of a
membership live in two slots, so they are written one after the other, members first: a crash
in between leaves a member whose room list misses the room, which the next join or DM repairs
(both writes are idempotent).  The lobby needs no records: it always exists, everyone is in it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from chat import keys
from chat.adapters.cluster import Cluster, Script
from chat.models import Room, dm_members, is_dm_room

LOBBY = Room("lobby", "Lobby", private=False)

CREATE_ROOM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'private', ARGV[2], 'created_by', ARGV[3],
           'created', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _room(room_id: str, fields: list[Any]) -> Room | None:
    if not fields or fields[0] is None:
        return None
    name, private, created_by, created = (_text(f) for f in fields)
    return Room(room_id, name, private == "1", created_by, int(created or 0))


class ClusterRooms:
    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._create = Script(cluster, CREATE_ROOM)

    async def create(self, room_id: str, name: str, private: bool, creator: str) -> Room | None:
        """Create the room with its creator as member; None if the id is taken."""
        room = Room(room_id, name, private, creator, int(time.time()))
        script_keys = [keys.room_meta_key(room_id), keys.room_members_key(room_id)]
        args = [name, "1" if private else "0", creator, room.created]
        made = await self._cluster.run(lambda _: self._create(script_keys, args), "create room")
        if not made:
            return None
        await self._link(room_id, [creator])
        if not private:
            await self._sadd(keys.public_rooms_key(), room_id)
        return room

    async def ensure_dm(self, room_id: str) -> None:
        """List the DM room in both users' room lists (idempotent).  A DM room needs no other
        record: its members are in its id, and it is private."""
        await self._link(room_id, set(dm_members(room_id)))

    async def get(self, room_id: str) -> Room | None:
        if room_id == LOBBY.id:
            return LOBBY
        return (await self.get_many([room_id])).get(room_id)

    async def get_many(self, room_ids: Iterable[str]) -> dict[str, Room]:
        wanted = list(dict.fromkeys(room_ids))
        dms = {
            r: Room(r, "", private=True, created_by=dm_members(r)[0])
            for r in wanted
            if is_dm_room(r)
        }
        ids = [r for r in wanted if r != LOBBY.id and r not in dms]

        fields = ("name", "private", "created_by", "created")
        rows = await asyncio.gather(
            *(self._cluster.command(keys.room_meta_key(r), "HMGET", keys.room_meta_key(r), *fields)
              for r in ids)
        )  # fmt: skip
        found = {rid: _room(rid, row) for rid, row in zip(ids, rows, strict=True)}
        result = {rid: room for rid, room in found.items() if room is not None}
        if LOBBY.id in wanted:
            result[LOBBY.id] = LOBBY
        return {**result, **dms}

    async def add_member(self, room_id: str, user_id: str) -> bool:
        """Add a member; True if they were not one already."""
        added = await self._sadd(keys.room_members_key(room_id), user_id)
        await self._link(room_id, [user_id])
        return bool(added)

    async def remove_member(self, room_id: str, user_id: str) -> bool:
        rooms, members = keys.user_rooms_key(user_id), keys.room_members_key(room_id)
        await self._cluster.command(rooms, "SREM", rooms, room_id, what="unlink member")
        removed = await self._cluster.command(members, "SREM", members, user_id, what="leave")
        return bool(removed)

    async def is_member(self, room_id: str, user_id: str) -> bool:
        if room_id == LOBBY.id:
            return True
        if is_dm_room(room_id):
            return user_id in dm_members(room_id)
        key = keys.room_members_key(room_id)
        return bool(await self._cluster.command(key, "SISMEMBER", key, user_id, what="member?"))

    async def members(self, room_id: str) -> list[str]:
        if is_dm_room(room_id):
            return sorted(set(dm_members(room_id)))
        key = keys.room_members_key(room_id)
        found = await self._cluster.command(key, "SMEMBERS", key, what="members")
        return sorted(_text(m) for m in found)

    async def user_rooms(self, user_id: str) -> set[str]:
        """Every room of the user, the lobby included."""
        key = keys.user_rooms_key(user_id)
        found = await self._cluster.command(key, "SMEMBERS", key, what="rooms")
        return {LOBBY.id, *(_text(r) for r in found)}

    async def public_rooms(self) -> set[str]:
        key = keys.public_rooms_key()
        found = await self._cluster.command(key, "SMEMBERS", key, what="public rooms")
        return {LOBBY.id, *(_text(r) for r in found)}

    async def _link(self, room_id: str, user_ids: Iterable[str]) -> None:
        """Add the room to each user's room list (sent together: one pipelined round trip)."""
        await asyncio.gather(*(self._sadd(keys.user_rooms_key(u), room_id) for u in user_ids))

    async def _sadd(self, key: str, member: str) -> int:
        return int(await self._cluster.command(key, "SADD", key, member, what="sadd"))
