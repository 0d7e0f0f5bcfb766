"""Users and their login records in the Redis Cluster.

Two records per user, in two slots: ``{u:<id>}:user`` (email, name, created), found by id, and
``{e:<email digest>}:account`` (id, password hash), found by email.  Registration writes the
user record first (unreachable without the account) and then claims the email with one atomic
script: two registrations of one email race on that single key and exactly one wins.  The
loser deletes its orphan user record.
"""

from __future__ import annotations

from collections.abc import Iterable

from chat import keys
from chat.adapters.cluster import Cluster, Script
from chat.models import Account, UserRecord

CLAIM_EMAIL = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'pw', ARGV[2])
return 1
"""


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


class ClusterAccounts:
    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._claim = Script(cluster, CLAIM_EMAIL)

    async def create(self, user: UserRecord, email_key: str, password_hash: str) -> bool:
        """Store a new user; False if the email is taken (nothing is left behind then)."""
        user_key = keys.user_key(user.id)
        await self._cluster.run(
            lambda c: c.hset(
                user_key, mapping={"email": user.email, "name": user.name, "created": user.created}
            ),
            "create user",
        )
        claimed = await self._cluster.run(
            lambda _: self._claim([keys.account_key(email_key)], [user.id, password_hash]),
            "claim email",
        )
        if not claimed:
            await self._cluster.run(lambda c: c.delete(user_key), "drop orphan user")
            return False
        # Everyone is in the lobby; its member list is the one room list kept this way.
        lobby = keys.room_members_key("lobby")
        await self._cluster.run(lambda c: c.sadd(lobby, user.id), "join lobby")
        return True

    async def account(self, email_key: str) -> Account | None:
        fields = await self._cluster.run(
            lambda c: c.hmget(keys.account_key(email_key), "id", "pw"), "account"
        )
        if not fields[0]:
            return None
        return Account(user_id=_text(fields[0]), password_hash=_text(fields[1]))

    async def set_password_hash(self, email_key: str, password_hash: str) -> None:
        key = keys.account_key(email_key)
        await self._cluster.run(lambda c: c.hset(key, "pw", password_hash), "rehash")

    async def user(self, user_id: str) -> UserRecord | None:
        fields = await self._cluster.run(
            lambda c: c.hmget(keys.user_key(user_id), "email", "name", "created"), "user"
        )
        if not fields[1]:
            return None
        return UserRecord(
            id=user_id,
            email=_text(fields[0]),
            name=_text(fields[1]),
            created=int(_text(fields[2]) or 0),
        )

    async def users(self, user_ids: Iterable[str]) -> dict[str, UserRecord]:
        """Many users at once (one round trip per cluster node, not per user)."""
        ids = list(dict.fromkeys(user_ids))

        async def fetch(c):  # type: ignore[no-untyped-def]
            pipe = c.pipeline(transaction=False)
            for user_id in ids:
                pipe.hmget(keys.user_key(user_id), "email", "name", "created")
            return await pipe.execute()

        rows = await self._cluster.run(fetch, "users") if ids else []
        return {
            uid: UserRecord(uid, _text(row[0]), _text(row[1]), int(_text(row[2]) or 0))
            for uid, row in zip(ids, rows, strict=True)
            if row[1]
        }

    async def set_name(self, user_id: str, name: str) -> None:
        await self._cluster.run(lambda c: c.hset(keys.user_key(user_id), "name", name), "rename")
