"""The contracts of ``Limits`` and ``SessionStore`` (chat/ports.py) checked over the in-memory
fakes and over the Redis Cluster adapters alike (as test_store_contracts.py does for History
and RoomStore).  Only what does not depend on the passing of time: the fakes' clock is the
test's, Redis's is its own (time itself: unit/test_fakes_time.py)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from fakes import MemoryLimits, MemorySessions
from redis_fixtures import access

from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.limits import ClusterLimits
from chat.adapters.cluster.sessions import ClusterSessions

COOLDOWN = {"login_cooldown_s": 30.0, "login_cooldown_max_s": 120.0}
TTL, GRACE, HOUR = 3_600_000, 60_000, 3_600_000


@dataclass
class Stores:
    limits: Any
    sessions: Any


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    if request.param == "memory":
        yield Stores(MemoryLimits(**COOLDOWN), MemorySessions())
        return
    fleet = request.getfixturevalue("redis_clean")
    seeds = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in fleet.cluster_nodes)]
    cluster = Cluster(seeds, node_id="test", access=access(fleet))
    await cluster.start(10)
    try:
        yield Stores(ClusterLimits(cluster, **COOLDOWN), ClusterSessions(cluster))
    finally:
        await cluster.stop()


def ident() -> str:
    return "u" + secrets.token_hex(4)


# --- Limits -------------------------------------------------------------------------------------


async def test_a_bucket_grants_up_to_its_burst_then_says_how_long_to_wait(stores):
    who = ident()
    assert await stores.limits.take("send", who, 0.01, 5, want=3) == (3, 0)
    assert await stores.limits.take("send", who, 0.01, 5, want=3) == (2, 0)
    granted, wait = await stores.limits.take("send", who, 0.01, 5)
    assert granted == 0 and 90 < wait <= 100  # one token at 0.01/s
    assert (await stores.limits.take("send", ident(), 0.01, 5))[0] == 1  # per ident
    assert (await stores.limits.take("join", who, 0.01, 5))[0] == 1  # per scope


async def test_failure_counters_cool_down_at_their_limit_and_ok_forgets_them(stores):
    tag = secrets.token_hex(4)
    counters = {f"{{login}}:{tag}:account": 3, f"{{login}}:{tag}:address": 5}
    assert await stores.limits.cooldown("check", counters) == 0
    assert await stores.limits.cooldown("fail", counters) == 0
    assert await stores.limits.cooldown("fail", counters) == 0
    assert await stores.limits.cooldown("fail", counters) == 30  # the account's third
    left = await stores.limits.cooldown("check", counters)
    assert 29 < left <= 30
    assert await stores.limits.cooldown("ok", counters) == 0
    assert await stores.limits.cooldown("check", counters) == 0


async def test_revoked_tokens_and_once(stores):
    jti = secrets.token_hex(8)
    assert not await stores.limits.is_revoked(jti)
    await stores.limits.revoke(jti, 60)
    assert await stores.limits.is_revoked(jti)
    who = ident()
    assert await stores.limits.once("typing", who, 60) is True
    assert await stores.limits.once("typing", who, 60) is False
    assert await stores.limits.once("typing", ident(), 60) is True


# --- SessionStore -------------------------------------------------------------------------------


async def test_a_family_rotates_once_per_secret_within_its_grace(stores):
    user, s = ident(), stores.sessions
    assert await s.start(user, "f1", "d1", TTL, 10) == 0
    assert await s.rotate(user, "f1", "d1", "d2", TTL, GRACE) == ("rotated", 0)
    assert await s.rotate(user, "f1", "d1", "d3", TTL, GRACE) == ("grace", 0)  # two tabs
    assert await s.rotate(user, "f1", "made-up", "d3", TTL, GRACE) == ("unknown", 0)
    assert await s.alive(user, "f1", 0)
    assert await s.rotate(user, "f1", "d2", "d3", TTL, GRACE) == ("rotated", 0)
    assert await s.rotate(user, "f1", "d1", "d4", TTL, GRACE) == ("reused", 0)  # too old
    assert not await s.alive(user, "f1", 0)  # a reuse ends the family
    assert await s.rotate(user, "f1", "d3", "d4", TTL, GRACE) == ("unknown", 0)


async def test_the_previous_secret_out_of_its_grace_is_a_reuse(stores):
    user, s = ident(), stores.sessions
    await s.start(user, "f1", "d1", TTL, 10)
    await s.rotate(user, "f1", "d1", "d2", TTL, GRACE)
    assert await s.rotate(user, "f1", "d1", "d3", TTL, -1) == ("reused", 0)


async def test_ending_one_family_or_all_of_them(stores):
    user, s = ident(), stores.sessions
    await s.start(user, "f1", "d1", TTL, 10)
    await s.start(user, "f2", "e1", TTL, 10)
    await s.end(user, "f1")
    assert not await s.alive(user, "f1", 0) and await s.alive(user, "f2", 0)
    assert await s.alive(user, "", 0)  # a token of no family lives by its generation only
    assert await s.end_all(user) == 1 and await s.generation(user) == 1
    assert not await s.alive(user, "", 0) and not await s.alive(user, "f2", 1)
    assert await s.start(user, "f3", "g1", TTL, 10) == 1 and await s.alive(user, "f3", 1)


async def test_beyond_the_most_families_the_closest_to_expiry_make_room(stores):
    user, s = ident(), stores.sessions
    await s.start(user, "short", "a", HOUR, 2)
    await s.start(user, "long", "b", 2 * HOUR, 2)
    await s.start(user, "new", "c", 3 * HOUR, 2)
    assert not await s.alive(user, "short", 0)
    assert await s.alive(user, "long", 0) and await s.alive(user, "new", 0)
