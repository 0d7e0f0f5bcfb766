"""Users and their login records in the Redis Cluster.

Two records per user, in two slots: ``{u:<id>}:user`` (email, name, created), found by id, and
``{e:<email digest>}:account`` (id, password hash), found by email.  Registration writes the
user record first (unreachable without the account) and then claims the email with one atomic
script: two registrations of one email race on that single key and exactly one wins.  The
loser deletes its orphan user record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from chat import keys
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.people import name_entry
from chat.adapters.cluster.roster import LOBBY, ClusterRoster
from chat.adapters.cluster.scripts import Script
from chat.models import Account, UserRecord

# Hazard: a resend after a lost reply finds its own claim, which must still answer 1 (an
# answer of 0 made the caller drop the new user, and left the email claimed by nobody).
CLAIM_EMAIL = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then return 1 end
  return 0
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'pw', ARGV[2])
return 1
"""


# The name and its version (``nv``), which orders the roster's copies of it (see
# ``roster.py``): renames applied there out of order never bring back an old name.  Returns
# the version and the name replaced (its entry of the name index goes).
SET_NAME = """
local old = redis.call('HGET', KEYS[1], 'name') or ''
redis.call('HSET', KEYS[1], 'name', ARGV[1])
return {redis.call('HINCRBY', KEYS[1], 'nv', 1), old}
"""

#: ``receipts``: the user's receipts setting, "0" when off (absent: on, the default).
#: ``bot``: "1" for the user of a service token.
USER_FIELDS = ("email", "name", "created", "receipts", "bot")


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


class ClusterAccounts:
    def __init__(self, cluster: Cluster, roster: ClusterRoster) -> None:
        self._cluster = cluster
        self._roster = roster
        self._claim = Script(cluster, CLAIM_EMAIL)
        self._set_name = Script(cluster, SET_NAME)

    async def create(self, user: UserRecord, email_key: str, password_hash: str) -> bool:
        """Store a new user; False if the email is taken (nothing is left behind then)."""
        user_key = keys.user_key(user.id)
        fields = ("email", user.email, "name", user.name, "created", user.created)
        await self._cluster.send(user_key, "HSET", user_key, *fields, what="create user")
        claimed = await self._claim(
            [keys.account_key(email_key)], [user.id, password_hash], what="claim email"
        )
        if not claimed:
            await self._cluster.send(user_key, "DEL", user_key, what="drop orphan user")
            return False
        # Everyone is in the lobby; its member list is the one room list kept this way.  The
        # name index (user search) learns the user at the same time.
        names = keys.user_names_key()
        await asyncio.gather(
            self._roster.add(LOBBY, user.id, [0, "0", 0, user.name]),
            self._cluster.send(names, "ZADD", names, 0, name_entry(user.id, user.name)),
        )
        return True

    async def create_bot(self, user: UserRecord) -> None:
        """A service token's user: the user record only (no email to claim, no password)."""
        user_key = keys.user_key(user.id)
        fields = ("email", "", "name", user.name, "created", user.created, "bot", 1)
        await self._cluster.send(user_key, "HSET", user_key, *fields, what="create bot")
        await self._roster.add(LOBBY, user.id, [0, "0", 0, user.name])

    async def account(self, email_key: str) -> Account | None:
        key = keys.account_key(email_key)
        fields = await self._cluster.send(key, "HMGET", key, "id", "pw", what="account")
        if not fields[0]:
            return None
        return Account(user_id=_text(fields[0]), password_hash=_text(fields[1]))

    async def set_password_hash(self, email_key: str, password_hash: str) -> None:
        key = keys.account_key(email_key)
        await self._cluster.send(key, "HSET", key, "pw", password_hash, what="rehash")

    async def user(self, user_id: str) -> UserRecord | None:
        key = keys.user_key(user_id)
        fields = await self._cluster.send(key, "HMGET", key, *USER_FIELDS, what="user")
        return _record(user_id, fields)

    async def users(self, user_ids: Iterable[str]) -> dict[str, UserRecord]:
        """Many users at once (one round trip per cluster node, not per user)."""
        ids = list(dict.fromkeys(user_ids))
        rows = await asyncio.gather(
            *(
                self._cluster.send(keys.user_key(u), "HMGET", keys.user_key(u), *USER_FIELDS)
                for u in ids
            )
        )
        found = {uid: _record(uid, row) for uid, row in zip(ids, rows, strict=True)}
        return {uid: record for uid, record in found.items() if record is not None}

    async def set_name(self, user_id: str, name: str) -> None:
        """Store the name, then update it in the rosters of the user's rooms."""
        key, names = keys.user_key(user_id), keys.user_names_key()
        version, old = await self._set_name([key], [name], what="rename")
        index: list[tuple[str, tuple[Any, ...]]] = [
            (names, ("ZADD", names, 0, name_entry(user_id, name)))
        ]
        if _text(old) and _text(old).lower() != name.lower():
            index.append((names, ("ZREM", names, name_entry(user_id, _text(old)))))
        await asyncio.gather(
            self._roster.renamed(user_id, name, int(version)),
            self._cluster.send_all(index, "index name"),
        )

    async def set_receipts(self, user_id: str, on: bool) -> None:
        key = keys.user_key(user_id)
        await self._cluster.send(key, "HSET", key, "receipts", int(on), what="settings")


def _record(user_id: str, fields: list[bytes | None]) -> UserRecord | None:
    if not fields[1]:
        return None
    created, receipts = int(_text(fields[2]) or 0), _text(fields[3]) != "0"
    bot = _text(fields[4]) == "1"
    return UserRecord(user_id, _text(fields[0]), _text(fields[1]), created, receipts, bot)
