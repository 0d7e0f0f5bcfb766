"""Read positions and unread counts in the Redis Cluster, without reading the history.

The history's append (``history.py``) keeps, per room: ``mcount`` (plain messages so far), the
field ``n`` (``mcount`` after it) on each stream entry, and per user the seqs of their own
messages (``own``) and of the messages that mention them (``mention``), the newest 128 each.
A read position is stored as ``"<read_seq> <n as of read_seq>"`` (``read``), so

    unread   = (mcount - n) - |own after read_seq|
    mentions = |mention after read_seq|

each capped at ``COUNT_CAP`` (100: "more than 99").  With more than 128 own messages after
the position, ``unread`` counts some of the user's own as unread (the set was trimmed); a read
at the room's end puts it right.  Every key of a room shares its hash tag, so each script runs
on the room's master, atomically.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from chat import keys
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.scripts import Script
from chat.models import COUNT_CAP, RoomCounts

# KEYS: seq, mcount, read, own:<user>, mention:<user>, log, members.  ARGV[1]: the user.
COUNTS = """
local function counts()
  local last = tonumber(redis.call('GET', KEYS[1]) or '0')
  local mcount = tonumber(redis.call('GET', KEYS[2]) or '0')
  local rs, n = 0, 0
  local stored = redis.call('HGET', KEYS[3], ARGV[1])
  if stored then
    -- "<read_seq> <n>", or "<seq> <n> j": where a member joined (the roster's scripts).
    local a, b = string.match(stored, '^(%d+) (%d+)')
    rs, n = tonumber(a), tonumber(b)
  end
  local unread = mcount - n - redis.call('ZCOUNT', KEYS[4], '(' .. rs, '+inf')
  local mentions = redis.call('ZCOUNT', KEYS[5], '(' .. rs, '+inf')
  return {last, rs, math.min(math.max(unread, 0), CAP), math.min(mentions, CAP)}
end
""".replace("CAP", str(COUNT_CAP))

UNREAD = COUNTS + "return counts()"

# ARGV[2]: the new position.  Returns {outcome, last_seq, read_seq, unread, mentions, members}
# with outcome 1 moved, 0 not above the position (nothing changed), -1 beyond the last seq.
MARK = (
    COUNTS
    + """
local want = tonumber(ARGV[2])
local before = counts()
local members = redis.call('SCARD', KEYS[7])
if want > before[1] then return {-1, before[1], before[2], before[3], before[4], members} end
if want <= before[2] then return {0, before[1], before[2], before[3], before[4], members} end
local n = 0
if want == before[1] then
  n = tonumber(redis.call('GET', KEYS[2]) or '0')
else
  -- The count as of ``want``: the ``n`` of the newest entry at or below it that has one
  -- (every entry should; a few are looked at in case one does not).  None: 0, which counts
  -- more unread, never fewer (entries stored before counting existed, or trimmed).
  local found = redis.call('XREVRANGE', KEYS[6], want .. '-0', '-', 'COUNT', 16)
  for _, entry in ipairs(found) do
    local fields = entry[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'n' then n = tonumber(fields[i + 1]) end
    end
    if n > 0 then break end
  end
end
redis.call('HSET', KEYS[3], ARGV[1], want .. ' ' .. n)
local after = counts()
return {1, after[1], after[2], after[3], after[4], members}
"""
)

OUTCOMES = {1: "moved", 0: "same", -1: "beyond"}


def _keys(room: str, user_id: str) -> list[str]:
    return [
        keys.room_seq_key(room),
        keys.room_mcount_key(room),
        keys.room_read_key(room),
        keys.room_own_key(room, user_id),
        keys.room_mention_key(room, user_id),
        keys.room_log_key(room),
        keys.room_members_key(room),
    ]


def _counts(reply: list[Any]) -> RoomCounts:
    return RoomCounts(*(int(v) for v in reply[:4]))


class ClusterReads:
    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._mark = Script(cluster, MARK)
        self._unread = Script(cluster, UNREAD)

    async def mark(self, room: str, user_id: str, seq: int) -> tuple[str, RoomCounts, int]:
        reply = await self._mark(_keys(room, user_id), [user_id, seq], durable=True, what="read")
        outcome, *rest = (int(v) for v in reply)
        return OUTCOMES[outcome], RoomCounts(*rest[:4]), rest[4]

    async def counts(self, user_id: str, rooms: Collection[str]) -> dict[str, RoomCounts]:
        names = list(dict.fromkeys(rooms))
        replies = await asyncio.gather(
            *(self._unread(_keys(r, user_id), [user_id], what="unread") for r in names)
        )
        return {room: _counts(reply) for room, reply in zip(names, replies, strict=True)}

    async def positions(self, room: str, user_ids: Collection[str]) -> dict[str, int]:
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return {}
        key = keys.room_read_key(room)
        found = await self._cluster.send(key, "HMGET", key, *ids, what="read positions")
        # A position from joining (" j") is where the member started, not what they read.
        replies = zip(ids, found, strict=True)
        texts = {u: v.decode() if isinstance(v, bytes) else v for u, v in replies}
        return {u: int(v.split(" ")[0]) for u, v in texts.items() if v and not v.endswith(" j")}
