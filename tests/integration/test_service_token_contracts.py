"""One suite, two implementations: the ``ServiceTokenStore`` contract (chat/ports.py) and the
bot users of ``AccountStore.create_bot``, over the in-memory fakes and over the Redis Cluster
adapters (the fakes the unit tier relies on cannot drift from what Redis does)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from fakes import MemoryAccounts, MemoryServiceTokens
from redis_fixtures import access

from chat import keys
from chat.adapters.cluster.accounts import ClusterAccounts
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.roster import ClusterRoster
from chat.adapters.cluster.service_tokens import ClusterServiceTokens
from chat.models import ServiceToken, UserRecord

NOW = 1_764_900_000_123  # ms: 13 digits, as every time until the year 2286


@dataclass
class Stores:
    tokens: Any
    accounts: Any
    cluster: Cluster | None = None


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    if request.param == "memory":
        yield Stores(MemoryServiceTokens(), MemoryAccounts())
        return
    fleet = request.getfixturevalue("redis_clean")
    seeds = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in fleet.cluster_nodes)]
    cluster = Cluster(seeds, node_id="test", access=access(fleet))
    await cluster.start(10)
    try:
        accounts = ClusterAccounts(cluster, ClusterRoster(cluster))
        yield Stores(ClusterServiceTokens(cluster), accounts, cluster)
    finally:
        await cluster.stop()


def token(*scopes: str, user: str | None = None) -> ServiceToken:
    return ServiceToken(
        secrets.token_hex(8), "Bot", user or secrets.token_urlsafe(9), list(scopes or ["bot"]),
        NOW, "ab" * 32,
    )  # fmt: skip


async def test_a_token_is_stored_and_read_back_as_it_was(stores):
    one, two = token(), token("bot", "admin")
    await stores.tokens.add(one)
    await stores.tokens.add(two)
    assert await stores.tokens.get(one.id) == one
    assert await stores.tokens.get("0" * 16) is None
    assert sorted(await stores.tokens.all(), key=lambda t: t.id) == sorted(
        [one, two], key=lambda t: t.id
    )
    await stores.tokens.add(one)  # the same record again (a resend): as it was
    assert await stores.tokens.get(one.id) == one
    with pytest.raises(RuntimeError):  # an id is never reused for another token
        await stores.tokens.add(msgspec.structs.replace(one, name="Other"))
    assert await stores.tokens.get(one.id) == one


async def test_the_admin_scope_and_revocation_move_the_user_in_and_out_of_the_admins(stores):
    admin, plain = token("bot", "admin"), token()
    await stores.tokens.add(admin)
    await stores.tokens.add(plain)
    assert await stores.tokens.is_admin(admin.user)
    assert not await stores.tokens.is_admin(plain.user)
    revoked = await stores.tokens.revoke(admin.id, NOW + 5)
    assert revoked is not None
    assert (revoked.revoked, revoked.hash, revoked.scopes) == (NOW + 5, "", ["bot", "admin"])
    assert revoked.created == NOW and revoked.user == admin.user
    assert await stores.tokens.get(admin.id) == revoked
    assert not await stores.tokens.is_admin(admin.user)
    # Again: the record unchanged (the first revocation's time), None for an unknown id.
    assert await stores.tokens.revoke(admin.id, NOW + 9) == revoked
    assert await stores.tokens.revoke("f" * 16, NOW) is None


async def test_the_store_keeps_only_the_hash(stores):
    if stores.cluster is None:
        pytest.skip("what Redis holds: the Redis adapter only")
    record = token()
    await stores.tokens.add(record)
    key = keys.service_tokens_key()
    raw = await stores.cluster.send(key, "HGET", key, record.id)
    assert b'"hash":"' + record.hash.encode() + b'"' in raw
    await stores.tokens.revoke(record.id, NOW)
    assert b"hash" not in await stores.cluster.send(key, "HGET", key, record.id)


async def test_a_bot_user_has_no_email_and_says_it_is_a_bot(stores):
    bot = UserRecord(secrets.token_urlsafe(9), "", "Helper", 1_764_900_000, bot=True)
    await stores.accounts.create_bot(bot)
    assert await stores.accounts.user(bot.id) == bot
    assert (await stores.accounts.users([bot.id]))[bot.id].bot
    await stores.accounts.set_name(bot.id, "Helper 2")
    renamed = await stores.accounts.user(bot.id)
    assert renamed is not None and (renamed.name, renamed.bot) == ("Helper 2", True)
    person = UserRecord(secrets.token_urlsafe(9), "p@example.com", "Person", 1)
    assert await stores.accounts.create(person, "p@example.com", "hash")
    assert not (await stores.accounts.user(person.id)).bot
