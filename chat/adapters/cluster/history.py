"""Room history in the Redis Cluster: one stream per room, gap-free sequence numbers.

All keys of a room share the hash tag ``{r:<room>}``, so one Lua script can, atomically:
return the first result of a retried send (idempotency record), or take the room's next
``seq``, stamp the master's clock, append the message under the stream id ``<seq>-0`` and
remember it for retries.  Scripts on one master run one at a time, so when seq N exists, every
seq below it exists too: a reader never sees a hole that a later read would fill.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

import msgspec

from chat import keys
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.scripts import Script
from chat.models import Message, UserRef

IDEMPOTENCY_MS = 10 * 60 * 1000

APPEND = """
local prev = redis.call('GET', KEYS[3])
if prev then
  -- A write, so that a WAIT after this script covers the original message too.
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
  return {0, prev}
end
local seq = redis.call('INCR', KEYS[1])
local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local msg = ARGV[1] .. seq .. ARGV[2] .. ts .. ARGV[3]
local maxlen = tonumber(ARGV[5])
if maxlen > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, seq .. '-0', 'm', msg, 't', ts)
else
  redis.call('XADD', KEYS[2], seq .. '-0', 'm', msg, 't', ts)
end
redis.call('SET', KEYS[3], msg, 'PX', ARGV[4])
local max_age = tonumber(ARGV[6])
if max_age > 0 and seq % 64 == 0 then
  -- Age retention, amortised over 64 appends: drop the expired among the oldest entries.
  local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 256)
  for _, entry in ipairs(oldest) do
    if tonumber(entry[2][4]) >= ts - max_age then
      redis.call('XTRIM', KEYS[2], 'MINID', entry[1])
      break
    end
  end
end
return {1, msg}
"""

_encode = msgspec.json.Encoder().encode
_decode_message = msgspec.json.Decoder(Message).decode


class ClusterHistory:
    def __init__(
        self,
        cluster: Cluster,
        *,
        max_len: int = 10_000,
        max_age_s: float = 0,
    ) -> None:
        self._cluster = cluster
        self._append = Script(cluster, APPEND)
        self._max_len = max_len
        self._max_age_ms = int(max_age_s * 1000)

    async def append(
        self, message_id: str, room: str, sender: UserRef, text: str, cid: str | None, token: str
    ) -> tuple[Message, bool]:
        """Store a message; return it and whether it is new (False: a retry of ``token``).

        Acknowledged only once a replica has it where the master has replicas, so an acked
        message survives the loss of its master.
        """
        head = b'{"id":' + _encode(message_id) + b',"room":' + _encode(room) + b',"seq":'
        tail = b',"from":' + _encode(sender) + b',"text":' + _encode(text)
        tail += (b',"cid":' + _encode(cid) if cid is not None else b"") + b"}"
        script_keys = (
            keys.room_seq_key(room),
            keys.room_log_key(room),
            keys.room_idem_key(room, sender.id, token),
        )
        args = (head, b',"ts":', tail, IDEMPOTENCY_MS, self._max_len, self._max_age_ms)
        created, raw = await self._append(script_keys, args, durable=True, what="append")
        return _decode_message(raw), bool(created)

    async def last_seq(self, room: str) -> int:
        key = keys.room_seq_key(room)
        return int(await self._cluster.send(key, "GET", key, what="last_seq") or 0)

    async def last_seqs(self, rooms: Collection[str]) -> dict[str, int]:
        """Many rooms' last seq, sent together (one round trip per master)."""
        names = list(dict.fromkeys(rooms))
        values = await asyncio.gather(
            *(self._cluster.send(keys.room_seq_key(r), "GET", keys.room_seq_key(r)) for r in names)
        )
        return {room: int(v or 0) for room, v in zip(names, values, strict=True)}

    async def page(
        self, room: str, *, before: int | None, after: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """Messages ascending by seq.  ``after`` (with or without ``before``): the first
        ``limit`` above it; only ``before``: the last ``limit`` below it; neither: the newest.
        ``has_more``: more messages exist beyond the page in the direction of paging."""
        log_key = keys.room_log_key(room)
        upper = f"({before}-0" if before is not None else "+"
        if after is not None:
            lower = f"({after}-0"
            entries = await self._read(log_key, "XRANGE", lower, upper, limit + 1)
            return _messages(entries[:limit]), len(entries) > limit
        entries = await self._read(log_key, "XREVRANGE", upper, "-", limit + 1)
        return _messages(reversed(entries[:limit])), len(entries) > limit

    async def between(self, room: str, after: int, upto: int, limit: int) -> list[Message]:
        """Messages with ``after < seq <= upto``, ascending, at most ``limit``."""
        if upto <= after:
            return []
        log_key = keys.room_log_key(room)
        return _messages(await self._read(log_key, "XRANGE", f"({after}-0", f"{upto}-0", limit))

    async def _read(self, key: str, command: str, start: str, end: str, count: int) -> list[Any]:
        found = await self._cluster.send(
            key, command, key, start, end, "COUNT", count, what="history"
        )
        return list(found or [])


def _messages(entries: Any) -> list[Message]:
    """Stream entries ``[id, [field, value, ...]]``: the message is the value of ``m``."""
    return [_decode_message(fields[fields.index(b"m") + 1]) for _, fields in entries]
