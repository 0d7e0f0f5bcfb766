"""Rooms and membership in the Redis Cluster.

Per room (slot ``{r:<room>}``): ``meta`` (name, private, created_by, created) and ``members``.
Per user (slot ``{u:<id>}``): ``rooms``, the rooms the user belongs to.  The two sides of a
membership live in two slots, so they are written one after the other, members first: a crash
in between leaves a member whose room list misses the room, which the next join or DM repairs
(both writes are idempotent).  The lobby needs no records: it always exists, everyone is in it.

Bounds (what one user can make the cluster hold): the rooms a user belongs to, DMs and the
lobby aside, are counted beside the room list (``{u:<id>}:quota``, changed in the same
scripts as the list) and capped; so is every room a user ever created (rooms are never
deleted).  Membership itself goes through the roster (``roster.py``), which keeps the
``members`` order.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterable
from typing import Any

from chat import keys
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.roster import SET_MEMBER, ClusterRoster, member_keys, tail
from chat.adapters.cluster.scripts import Script
from chat.errors import ChatError, forbidden, moderation_refusal, not_found
from chat.models import Room, dm_members, is_dm_room, is_room_id

LOBBY = Room("lobby", "Lobby", private=False)

# KEYS: as SET_MEMBER's (six), then the room's meta and roles.  ARGV: as SET_MEMBER's (the
# creator), then name, private, created, managed, member limit.  The room, its first member
# and its owner are made together.
CREATE_ROOM = (
    """
if redis.call('EXISTS', KEYS[7]) == 1 then
  -- This very request, sent again (its reply was lost): made, by it.
  if redis.call('HGET', KEYS[7], 'req') == ARGV[12] then return 1 end
  return 0
end
redis.call('HSET', KEYS[7], 'name', ARGV[7], 'private', ARGV[8], 'created_by', ARGV[1],
           'created', ARGV[9], 'managed', ARGV[10], 'member_limit', ARGV[11], 'req', ARGV[12])
redis.call('HSET', KEYS[8], ARGV[1], 'owner')
"""
    + SET_MEMBER
)

# KEYS[1], KEYS[2]: the user's room list and quota.  The count of a list from before the
# count existed is made once, here.
JOINED = """
local function joined()
  local n = redis.call('HGET', KEYS[2], 'rooms')
  if n then return tonumber(n) end
  n = 0
  for _, r in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    if string.sub(r, 1, 3) ~= 'dm:' then n = n + 1 end
  end
  redis.call('HSET', KEYS[2], 'rooms', n)
  return n
end
"""

# ARGV: room, most rooms (0: no bound).  1: listed (or was), 0: refused.
LINK = (
    JOINED
    + """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if tonumber(ARGV[2]) > 0 and joined() >= tonumber(ARGV[2]) then return 0 end
joined()
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[2], 'rooms', 1)
return 1
"""
)

# KEYS: the user's room list, record and blocks.  ARGV: the DM room, the other user.
# 0 when the user has no record (deleted): checked with the add in one step, so a deletion's
# read of the list after it dropped the record (``ClusterPeople.close_dms``) sees every DM ever
# listed.  -1 when the user blocked the other: a blocked user cannot list a DM in the
# blocker's list.  Else 1 when listed already, 2 when listed now.
DM_LINK = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 then return -1 end
return 1 + redis.call('SADD', KEYS[1], ARGV[1])
"""

# ARGV: room.
UNLINK = (
    JOINED
    + """
local n = joined()
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 and n > 0 then
  redis.call('HINCRBY', KEYS[2], 'rooms', -1)
end
return 0
"""
)

# ARGV: most rooms, most rooms created, the request.  1: one more creation counted, 0: in too
# many rooms, -1: created too many.  Counted once per request (``c:<request>``, kept for a
# creation, taken back with its refund): a resend does not count it twice.
RESERVE = (
    JOINED
    + """
if redis.call('HEXISTS', KEYS[2], 'c:' .. ARGV[3]) == 1 then return 1 end
if joined() >= tonumber(ARGV[1]) then return 0 end
if tonumber(redis.call('HGET', KEYS[2], 'created') or '0') >= tonumber(ARGV[2]) then
  return -1
end
redis.call('HINCRBY', KEYS[2], 'created', 1)
redis.call('HSET', KEYS[2], 'c:' .. ARGV[3], 1)
return 1
"""
)

# KEYS: the user's quota.  ARGV: the request.  A creation that did not happen is not counted.
REFUND = """
if redis.call('HDEL', KEYS[1], 'c:' .. ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'created', -1)
end
return 0
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


ROOM_FIELDS = ("name", "private", "created_by", "created", "managed", "member_limit")


def _room(room_id: str, fields: list[Any]) -> Room | None:
    if not fields or fields[0] is None:
        return None
    name, private, created_by, created, managed, limit = (_text(f) for f in fields)
    return Room(
        room_id, name, private == "1", created_by, int(created or 0), managed == "1",
        int(limit or 0),
    )  # fmt: skip


class ClusterRooms:
    def __init__(
        self, cluster: Cluster, roster: ClusterRoster, *, rooms_per_user: int,
        created_per_user: int,
    ) -> None:  # fmt: skip
        self._cluster = cluster
        self.roster = roster
        self._create = Script(cluster, CREATE_ROOM)
        self._link_script = Script(cluster, LINK)
        self._unlink = Script(cluster, UNLINK)
        self._dm_link = Script(cluster, DM_LINK)
        self._reserve = Script(cluster, RESERVE)
        self._refund = Script(cluster, REFUND)
        self._rooms_max = rooms_per_user
        self._created_max = created_per_user

    async def create(
        self, room_id: str, name: str, private: bool, creator: str, *, managed: bool = False,
        member_limit: int = 0,
    ) -> Room | None:  # fmt: skip
        """Create the room with its creator as member and owner; None if the id is taken."""
        request = secrets.token_hex(8)  # what a resend of its scripts is known by
        await self._take_creation(creator, request)
        private = private or managed
        room = Room(room_id, name, private, creator, int(time.time()), managed, member_limit)
        pv, online, nv, creator_name = await self.roster.state(creator)
        script_keys = [
            *member_keys(room_id),
            keys.room_meta_key(room_id),
            keys.room_roles_key(room_id),
        ]
        args = [creator, pv, online, nv, tail(creator, creator_name), "add"]
        args += [name, "1" if private else "0", room.created, int(managed), member_limit, request]
        made = await self._create(script_keys, args, what="create room")
        if not made:
            quota = keys.user_quota_key(creator)
            await self._refund([quota], [request], what="refund")
            return None
        await self._user_script(self._link_script, creator, [room_id, 0])  # counted above
        # Again, now that the creator's list has the room: a rename or presence transition
        # since the state was read did not reach this roster (it goes by that list).
        await self.roster.add(room_id, creator)
        if not private:
            await self._sadd(keys.public_rooms_key(), room_id)
        return room

    async def _take_creation(self, user_id: str, request: str) -> None:
        outcome = await self._user_script(
            self._reserve, user_id, [self._rooms_max, self._created_max, request]
        )
        if outcome == 0:
            raise self._too_many()
        if outcome < 0:
            raise ChatError("too_many", f"a user may create at most {self._created_max} rooms", 403)

    def _too_many(self) -> ChatError:
        return ChatError("too_many", f"a user may be in at most {self._rooms_max} rooms", 403)

    async def _user_script(self, script: Script, user_id: str, args: list[Any]) -> int:
        script_keys = [keys.user_rooms_key(user_id), keys.user_quota_key(user_id)]
        return int(await script(script_keys, args, what="user rooms"))

    async def ensure_dm(self, room_id: str) -> None:
        """List the DM room in both users' room lists (idempotent; both sent together).  A DM
        room needs no other record: its members are in its id, and it is private."""
        first, second = dm_members(room_id)
        pairs = [(first, second)] if first == second else [(first, second), (second, first)]
        listed = await asyncio.gather(
            *(self._dm_link([keys.user_rooms_key(u), keys.user_key(u), keys.user_blocks_key(u)],
                            [room_id, other], what="link dm")
              for u, other in pairs)
        )  # fmt: skip
        if min(listed) > 0:
            return
        # Refused for one user: the other's list gets the room back only if this call put
        # it there (a DM refused for one user is listed for neither).
        await asyncio.gather(
            *(self._cluster.send(keys.user_rooms_key(u), "SREM", keys.user_rooms_key(u), room_id)
              for (u, _), outcome in zip(pairs, listed, strict=True) if outcome == 2)
        )  # fmt: skip
        if 0 in listed:
            raise not_found("no_user", "no such user")
        raise forbidden()

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

        fields = ROOM_FIELDS
        rows = await asyncio.gather(
            *(self._cluster.send(keys.room_meta_key(r), "HMGET", keys.room_meta_key(r), *fields)
              for r in ids)
        )  # fmt: skip
        found = {rid: _room(rid, row) for rid, row in zip(ids, rows, strict=True)}
        result = {rid: room for rid, room in found.items() if room is not None}
        if LOBBY.id in wanted:
            result[LOBBY.id] = LOBBY
        return {**result, **dms}

    async def add_member(self, room_id: str, user_id: str, most: int = 0) -> bool:
        """Add a member; True if they were not one already.  ``too_many`` when the user is in
        as many rooms as allowed, ``room_full`` when the room has ``most`` members (0: no
        bound; counted and added in one step).  The user's list first: it holds the bound,
        and a crash before the second write leaves a listed room that the next join completes
        (a full room takes the listing back)."""
        if not await self._user_script(self._link_script, user_id, [room_id, self._rooms_max]):
            raise self._too_many()
        added = await self.roster.add(room_id, user_id, most=most)
        if added < 0:
            await self._user_script(self._unlink, user_id, [room_id])
            raise moderation_refusal("room_full")
        return bool(added)

    async def remove_member(self, room_id: str, user_id: str) -> bool:
        """Remove a member; a role they had in the room goes with them."""
        await self._user_script(self._unlink, user_id, [room_id])
        roles = keys.room_roles_key(room_id)
        removed, _ = await asyncio.gather(
            self.roster.remove(room_id, user_id),
            self._cluster.send(roles, "HDEL", roles, user_id, what="role"),
        )
        return removed

    async def set_settings(
        self, room_id: str, managed: bool | None, member_limit: int | None
    ) -> None:
        """Change what is not None; a managed room is private (and no longer listed)."""
        meta, changes = keys.room_meta_key(room_id), []
        if managed is not None:
            changes += ["managed", int(managed)] + (["private", 1] if managed else [])
        if member_limit is not None:
            changes += ["member_limit", member_limit]
        if changes:
            await self._cluster.send(meta, "HSET", meta, *changes, durable=True, what="settings")
        if managed:
            public = keys.public_rooms_key()
            await self._cluster.send(public, "SREM", public, room_id, what="settings")

    async def member_count(self, room_id: str) -> int:
        key = keys.room_members_key(room_id)
        return int(await self._cluster.send(key, "SCARD", key, what="members"))

    async def is_member(self, room_id: str, user_id: str) -> bool:
        if room_id == LOBBY.id:
            return True
        if is_dm_room(room_id):
            return user_id in dm_members(room_id)
        key = keys.room_members_key(room_id)
        return bool(await self._cluster.send(key, "SISMEMBER", key, user_id, what="member?"))

    async def members_page(
        self, room_id: str, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """``{id, name, online}`` of members ``offset`` to ``offset + limit`` (online first,
        then by name) and how many there are: one ``ZRANGE``, whatever the room's size."""
        return await self.roster.page(room_id, offset, limit)

    async def user_rooms(self, user_id: str) -> set[str]:
        """The listed rooms of which the user is a member (one batched ``SISMEMBER`` per
        room, after the list: see the port)."""
        listed = await self.listed_rooms(user_id)
        plain = [r for r in listed if r != LOBBY.id and not is_dm_room(r)]
        member = await asyncio.gather(
            *(self._cluster.send(keys.room_members_key(r), "SISMEMBER", keys.room_members_key(r),
                                 user_id, what="member?") for r in plain)
        )  # fmt: skip
        return listed.difference(r for r, yes in zip(plain, member, strict=True) if not yes)

    async def listed_rooms(self, user_id: str) -> set[str]:
        key = keys.user_rooms_key(user_id)
        found = await self._cluster.send(key, "SMEMBERS", key, what="rooms")
        return {LOBBY.id, *_valid(found)}

    async def public_rooms(self) -> set[str]:
        key = keys.public_rooms_key()
        found = await self._cluster.send(key, "SMEMBERS", key, what="public rooms")
        return {LOBBY.id, *_valid(found)}

    async def _sadd(self, key: str, member: str) -> int:
        return int(await self._cluster.send(key, "SADD", key, member, what="sadd"))


def _valid(found: Iterable[Any]) -> list[str]:
    """Listed ids that pass today's rules.  Before 2026-12-06 an id with a final newline
    passed (``chat/models.py``): such a room (a public "lobby\n", shown as the lobby to
    everyone) is listed nowhere since, and cannot be joined."""
    ids = (_text(r) for r in found)
    return [r for r in ids if is_room_id(r) or is_dm_room(r)]
