"""The cluster client sends a command again when its reply was lost (chat/adapters/cluster/
client.py), so a script whose first run landed runs twice.  Each script below is run twice
with the same arguments, as a resend runs it, on the real cluster: the second run must answer
what the first did and change nothing more."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis_fixtures import access

from chat import keys
from chat.adapters.cluster.accounts import ClusterAccounts
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.presence import ClusterPresence
from chat.adapters.cluster.rooms import ClusterRooms
from chat.adapters.cluster.roster import ClusterRoster
from chat.adapters.cluster.service_tokens import ClusterServiceTokens
from chat.adapters.cluster.sessions import ClusterSessions
from chat.adapters.cluster.shardset import ClusterShardSet
from chat.models import Layout, ServiceToken, UserRecord

HOUR = 3_600_000


@pytest.fixture
async def cluster(redis_clean) -> AsyncIterator[Cluster]:
    seeds = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in redis_clean.cluster_nodes)]
    client = Cluster(seeds, node_id="test", access=access(redis_clean))
    await client.start(10)
    try:
        yield client
    finally:
        await client.stop()


def ident() -> str:
    return "u" + secrets.token_hex(4)


async def test_a_registration_sent_again_keeps_its_account(cluster):
    """Answered 0, the caller dropped the new user and left the email claimed by nobody:
    that email could never register nor sign in again."""
    accounts = ClusterAccounts(cluster, ClusterRoster(cluster))
    user = UserRecord(ident(), "ann@example.com", "Ann")
    assert await accounts.create(user, "ann@example.com", "hash")
    assert await accounts.create(user, "ann@example.com", "hash")  # the same, again
    assert await accounts.user(user.id) is not None
    account = await accounts.account("ann@example.com")
    assert account is not None and account.user_id == user.id
    other = UserRecord(ident(), "ann@example.com", "Another")
    assert not await accounts.create(other, "ann@example.com", "hash")  # still taken


async def test_a_rotation_sent_again_is_the_same_rotation(cluster):
    """Answered ``grace``, the client kept the old secret, and its next refresh was taken for
    a stolen one: the sign-in ended as a reuse."""
    sessions, user = ClusterSessions(cluster), ident()
    await sessions.start(user, "f1", "d1", HOUR, 10)
    assert await sessions.rotate(user, "f1", "d1", "d2", HOUR, 60_000) == ("rotated", 0)
    assert await sessions.rotate(user, "f1", "d1", "d2", HOUR, 60_000) == ("rotated", 0)
    assert await sessions.rotate(user, "f1", "d1", "d3", HOUR, 60_000) == ("grace", 0)
    assert await sessions.rotate(user, "f1", "d2", "d4", HOUR, 60_000) == ("rotated", 0)
    assert await sessions.alive(user, "f1", 0)


async def test_a_shard_set_change_sent_again_is_written(cluster):
    store = ClusterShardSet(cluster)
    layout = Layout(1, {"a": "redis://a:6379"})
    assert await store.write(layout, None)
    assert await store.write(layout, None)
    assert not await store.write(Layout(1, {"b": "redis://b:6379"}), None)  # another's
    assert await store.read() == layout


async def test_a_service_token_sent_again_is_added(cluster):
    tokens = ClusterServiceTokens(cluster)
    token = ServiceToken(secrets.token_hex(8), "Bot", ident(), ["bot"], 1, "ab" * 32)
    await tokens.add(token)
    await tokens.add(token)  # raised "exists" for the token it had just stored
    assert await tokens.get(token.id) == token


async def test_presence_transitions_sent_again_answer_their_version_again(cluster):
    """Answered 0, a transition that landed was never applied to the rosters nor
    announced: a user shown offline while connected, or online for good."""
    presence, user = ClusterPresence(cluster, "n1", ClusterRoster(cluster)), ident()
    assert await presence.register(user, "s1", "inc1", 1_000) == 1
    assert await presence.register(user, "s1", "inc1", 1_000) == 1
    assert await presence.register(user, "s2", "inc1", 2_000) == 0  # online already
    # Another socket in the same millisecond (on another node) is no resend: not announced
    # twice (each node announced the user's coming online).
    assert await presence.register(user, "s9", "inc2", 1_000) == 0
    # The same socket registered again later (its node woke from a pause) is no resend either.
    assert await presence.register(user, "s1", "inc3", 1_500) == 0
    await presence.unregister(user, "s1", 0)
    await presence.unregister(user, "s2", 0)
    await presence.unregister(user, "s9", 0)
    assert await presence.settle(user, 3_000) is True
    assert await presence.settle(user, 3_000) is True
    assert await presence.settle(user, 4_000) is False  # offline already
    assert (await presence.online([user]))[user] is False
    assert await presence.register(user, "s3", "inc1", 5_000) == 1
    assert await presence.purge_user("n1", "inc1", user, 6_000) == (1, True)
    assert await presence.purge_user("n1", "inc1", user, 6_000) == (0, True)
    assert await presence.purge_user("n1", "inc1", user, 7_000) == (0, False)
    key = keys.online_users_key()
    assert not await cluster.send(key, "SISMEMBER", key, user)


def twice(script: Any) -> Any:
    """The script run a second time with the same arguments, answering what the second run
    answered: what a resend after a lost reply does."""

    async def run(*args: Any, **kwargs: Any) -> Any:
        await script(*args, **kwargs)
        return await script(*args, **kwargs)

    return run


async def test_a_room_creation_sent_again_is_made_once_and_counted_once(cluster):
    """Answered 0, the creator was told the room exists, and the steps after it (their list,
    the public rooms) never ran: a public room nobody could find."""
    roster = ClusterRoster(cluster)
    rooms = ClusterRooms(cluster, roster, rooms_per_user=10, created_per_user=10)
    accounts = ClusterAccounts(cluster, roster)
    for user_id in ("ann", "bob"):
        assert await accounts.create(UserRecord(user_id, f"{user_id}@x.example", "A"),
                                     f"{user_id}@x.example", "hash")  # fmt: skip
    rooms._reserve, rooms._create, rooms._refund = (
        twice(rooms._reserve),
        twice(rooms._create),
        twice(rooms._refund),
    )
    room_id = "r" + secrets.token_hex(4)
    assert await rooms.create(room_id, "R", False, "ann") is not None
    assert room_id in await rooms.user_rooms("ann") and room_id in await rooms.public_rooms()
    assert await rooms.create(room_id, "R", False, "bob") is None  # taken: refunded once
    quota = keys.user_quota_key
    assert await cluster.send(quota("ann"), "HGET", quota("ann"), "created") == b"1"
    assert await cluster.send(quota("bob"), "HGET", quota("bob"), "created") == b"0"


async def test_a_claim_of_due_users_sent_again_answers_the_users_it_took(cluster):
    """Answered none, the users it had taken off the grace set were settled by nobody: shown
    online for good."""
    presence, user = ClusterPresence(cluster, "n1", ClusterRoster(cluster)), ident()
    key = keys.offline_due_key()
    await cluster.send(key, "ZADD", key, 1, user)
    presence._claim = twice(presence._claim)
    assert user in await presence.due(10)
    assert user not in await presence.due(10)  # claimed once
