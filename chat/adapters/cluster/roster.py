"""Each room's members in ``members`` order (online first, then by name), kept in the cluster so
that a page costs one ``ZRANGE`` and one ``ZCARD`` whatever the room's size.

Per room (slot ``{r:<room>}``, beside ``members``): ``roster``, a sorted set whose scores are
all 0, so Redis orders it by the member string ``<0 online|1 offline><name lowercased>\\0<id>
\\0<name>``: byte order of UTF-8 is code point order, the order the old in-memory sort had.
``roster:index`` holds per member the entry (``m:<id>``, to replace it) and the newest state
known: ``p:<id>`` = ``<presence version> <0|1>``, ``n:<id>`` = ``<name version> <tail>``.

Entries change on joins and leaves (with ``members``, in one script), on renames, and on
presence transitions (for every room of the user, the lobby included).  Hazard: these writes
come from different nodes and may land out of order, so each carries the version of its
source (``v`` in the user's presence record, ``nv`` in the user record, both bumped in the
scripts that change them) and an older one never overwrites a newer one.  A write for a member
not (yet) in the roster still records the state, which a join arriving later then uses.

Rooms whose ``members`` were filled before the roster existed are indexed on their first
``members`` call (the only step that costs the room's size, once).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from chat import keys
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.scripts import Script
from chat.errors import ChatError
from chat.models import DELETED_NAME, dm_members, is_dm_room

log = logging.getLogger(__name__)

LOBBY = "lobby"

# KEYS: roster, index, members, read positions, seq, mcount.  ARGV: id, presence version or '',
# online, name version or '', tail (``<lower>\0<id>\0<name>``), 'add' (also a member: SADD)
# or 'update' (only if listed).  Returns 1 if ``members`` gained the id.  A new member's read
# position starts at the room's newest message: what came before they joined is not unread.
SET_MEMBER = r"""
local id, idx = ARGV[1], KEYS[2]
local function keep_newer(field, version, value)
  if version == '' then return end
  local stored = redis.call('HGET', idx, field)
  if not stored or tonumber(string.match(stored, '^(%d+)')) < tonumber(version) then
    redis.call('HSET', idx, field, version .. ' ' .. value)
  end
end
keep_newer('p:' .. id, ARGV[2], ARGV[3])
keep_newer('n:' .. id, ARGV[4], ARGV[5])
local added = 0
if ARGV[6] == 'add' then added = redis.call('SADD', KEYS[3], id) end
if added == 1 then
  local seq = redis.call('GET', KEYS[5]) or '0'
  -- Marked " j": a starting point, not a read (receipts do not show it).
  redis.call('HSETNX', KEYS[4], id, seq .. ' ' .. (redis.call('GET', KEYS[6]) or '0') .. ' j')
end
local old = redis.call('HGET', idx, 'm:' .. id)
if ARGV[6] ~= 'add' and not old then return added end
local p = redis.call('HGET', idx, 'p:' .. id) or '0 0'
local n = redis.call('HGET', idx, 'n:' .. id)
local entry = (string.sub(p, -1) == '1' and '0' or '1') .. string.match(n, '^%d+ (.*)$')
if entry ~= old then
  if old then redis.call('ZREM', KEYS[1], old) end
  redis.call('ZADD', KEYS[1], 0, entry)
  redis.call('HSET', idx, 'm:' .. id, entry)
end
return added
"""

# SET_MEMBER's 'add' behind a bound: ARGV[7] the most members (0: none).  -1 (nothing written)
# if the room is full: counted and added in one step, so joins racing for the last place
# cannot both get it.
ADD_MEMBER = (
    """
if tonumber(ARGV[7]) > 0 and redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 0
    and redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[7]) then
  return -1
end
"""
    + SET_MEMBER
)

# KEYS: as SET_MEMBER.  ARGV: id.  Returns 1 if ``members`` lost the id (and its read position:
# joining again starts from the room's newest message then).
REMOVE_MEMBER = """
local old = redis.call('HGET', KEYS[2], 'm:' .. ARGV[1])
if old then redis.call('ZREM', KEYS[1], old) end
redis.call('HDEL', KEYS[2], 'm:' .. ARGV[1], 'p:' .. ARGV[1], 'n:' .. ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return redis.call('SREM', KEYS[3], ARGV[1])
"""


def member_keys(room_id: str) -> list[str]:
    """The KEYS of ``SET_MEMBER`` and ``REMOVE_MEMBER``, in their order."""
    return [
        keys.room_roster_key(room_id),
        keys.room_roster_index_key(room_id),
        keys.room_members_key(room_id),
        keys.room_read_key(room_id),
        keys.room_seq_key(room_id),
        keys.room_mcount_key(room_id),
    ]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def tail(user_id: str, name: str) -> str:
    """The entry without its online flag."""
    return f"{name.lower()}\0{user_id}\0{name}"


def _row(entry: str) -> dict[str, Any]:
    _, user_id, name = entry[1:].split("\0", 2)
    return {"id": user_id, "name": name, "online": entry[0] == "0"}


class ClusterRoster:
    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._set = Script(cluster, SET_MEMBER)
        self._add = Script(cluster, ADD_MEMBER)
        self._remove = Script(cluster, REMOVE_MEMBER)

    async def _run(self, script: Script, room_id: str, args: list[Any]) -> int:
        return int(await script(member_keys(room_id), args, what="roster"))

    # --- membership ------------------------------------------------------------------------

    async def state(self, user_id: str, missing: str | None = None) -> list[Any]:
        """The script arguments describing the user now: presence and name, with versions
        (``missing``: the name of a user without a record; else their id)."""
        user, presence = keys.user_key(user_id), keys.user_presence_key(user_id)
        (name, name_v), (online, presence_v) = await asyncio.gather(
            self._cluster.send(user, "HMGET", user, "name", "nv", what="roster user"),
            self._cluster.send(presence, "HMGET", presence, "online", "v", what="roster"),
        )
        name = _text(name) or (user_id if missing is None else missing)
        return [int(_text(presence_v) or 0), _text(online) or "0", int(_text(name_v) or 0), name]

    async def add(
        self, room_id: str, user_id: str, state: list[Any] | None = None, *, most: int = 0
    ) -> int:
        """Make the user a member: 1 if they were not one, 0 if they were, -1 (nothing
        changed) if the room has ``most`` members already.  ``state`` as ``state()``."""
        pv, online, nv, name = state if state is not None else await self.state(user_id)
        args = [user_id, pv, online, nv, tail(user_id, name), "add", most]
        return await self._run(self._add, room_id, args)

    async def remove(self, room_id: str, user_id: str) -> bool:
        return bool(await self._run(self._remove, room_id, [user_id]))

    # --- changes of a user, in every room of theirs ----------------------------------------------

    async def presence(self, user_id: str, online: bool, version: int) -> None:
        """Never raises: the transition is decided and must still be announced; a roster
        that missed it shows the old state until the user's next transition."""
        args = [user_id, version, "1" if online else "0", "", "", "update"]
        try:
            await self._each_room(user_id, args)
        except ChatError as exc:
            log.warning("roster: presence of %s not applied: %s", user_id, exc.message)

    async def renamed(self, user_id: str, name: str, version: int) -> None:
        await self._each_room(user_id, [user_id, "", "", version, tail(user_id, name), "update"])

    async def _each_room(self, user_id: str, args: list[Any]) -> None:
        key = keys.user_rooms_key(user_id)
        found = await self._cluster.send(key, "SMEMBERS", key, what="rooms")
        rooms = [LOBBY, *(r for r in map(_text, found) if not is_dm_room(r))]
        await asyncio.gather(*(self._run(self._set, room, args) for room in rooms))

    # --- reading -------------------------------------------------------------------------------

    async def page(self, room_id: str, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Members ``offset`` to ``offset + limit`` in order, and how many there are."""
        if is_dm_room(room_id):
            return await self._dm_page(room_id, offset, limit)
        entries, count, expected = await self._read(room_id, offset, limit)
        if count != expected:  # members listed before the roster existed: index them, once
            await self._index(room_id)
            entries, count, _ = await self._read(room_id, offset, limit)
        return [_row(_text(e)) for e in entries], int(count)

    async def _read(self, room_id: str, offset: int, limit: int) -> tuple[list[Any], int, int]:
        roster, members = keys.room_roster_key(room_id), keys.room_members_key(room_id)
        entries, count, expected = await asyncio.gather(
            self._cluster.send(roster, "ZRANGE", roster, offset, offset + limit - 1),
            self._cluster.send(roster, "ZCARD", roster, what="roster"),
            self._cluster.send(members, "SCARD", members, what="members"),
        )
        return list(entries), int(count), int(expected)

    async def _dm_page(
        self, room_id: str, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A DM has no roster: its two members are in its id (a member without a record is a
        deleted account)."""
        ids = sorted(set(dm_members(room_id)))
        states = await asyncio.gather(*(self.state(u, DELETED_NAME) for u in ids))
        rows = [
            {"id": u, "name": s[3], "online": s[1] == "1"} for u, s in zip(ids, states, strict=True)
        ]
        rows.sort(key=lambda r: (not r["online"], r["name"].lower(), r["id"]))
        return rows[offset : offset + limit], len(rows)

    async def _index(self, room_id: str) -> None:
        members, index = keys.room_members_key(room_id), keys.room_roster_index_key(room_id)
        ids = sorted(map(_text, await self._cluster.send(members, "SMEMBERS", members)))
        if not ids:
            return
        listed = await self._cluster.send(index, "HMGET", index, *(f"m:{u}" for u in ids))
        missing = [u for u, entry in zip(ids, listed, strict=True) if entry is None]
        await asyncio.gather(*(self.add(room_id, u) for u in missing))
