"""Pytest fixtures backed by real local Redis/Valkey servers (see devstack.cluster).

Imported by the conftest.py of tests/integration and tests/e2e (never by tests/unit)::

    from redis_fixtures import make_fleet, redis_clean, redis_fleet, redis_fleet_acl

They are plain sync fixtures, so async tests can use them too.  A test module whose tests
should also run against servers that require an ACL user and password overrides
``redis_clean``::

    @pytest.fixture(params=AUTH_VARIANTS)
    def redis_clean(request): return clean_fleet(request)
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chat.adapters.redis_common import RedisAccess
from devstack.cluster import RedisFleet

#: ``redis_clean`` variants: the open fleet, and one with an ACL user and a password.
AUTH_VARIANTS = ("open", "acl")
ACL_USER = "chat"


@pytest.fixture(scope="session")
def redis_fleet() -> Iterator[RedisFleet]:
    """One shared fleet per session: shard0..shard2 + a 3-master/3-replica cluster.

    Do not kill/pause its processes; use ``make_fleet`` for fault tests.
    """
    with RedisFleet(shards=3, masters=3, replicas=1) as fleet:
        yield fleet


@pytest.fixture(scope="session")
def redis_fleet_acl() -> Iterator[RedisFleet]:
    """Like ``redis_fleet``, but every server requires the ACL user ``chat`` and a password
    (the ``default`` user is disabled); ``fleet.node_options()`` reach it."""
    password = f"acl-{secrets.token_urlsafe(18)}"
    with RedisFleet(shards=3, masters=3, replicas=1, username=ACL_USER, password=password) as f:
        yield f


def fleet_of(request: pytest.FixtureRequest) -> RedisFleet:
    """The shared fleet of ``request.param``, one of AUTH_VARIANTS."""
    name = {"open": "redis_fleet", "acl": "redis_fleet_acl"}[request.param]
    fleet: RedisFleet = request.getfixturevalue(name)
    return fleet


def clean_fleet(request: pytest.FixtureRequest) -> RedisFleet:
    """The shared fleet of ``request.param``, one of AUTH_VARIANTS, flushed."""
    fleet = fleet_of(request)
    fleet.flushall()
    return fleet


def access(fleet: RedisFleet) -> RedisAccess:
    """What the node's adapters need to reach ``fleet`` (as ``chat serve`` would build it)."""
    o = fleet.node_options()
    return RedisAccess(
        username=o.get("redis_username", ""),
        password=o.get("redis_password", ""),
        tls=o.get("cluster_tls") == "true",
        ca_file=o.get("redis_ca_file", ""),
        cert_file=o.get("redis_cert_file", ""),
        key_file=o.get("redis_key_file", ""),
    )


@pytest.fixture
def redis_clean(redis_fleet: RedisFleet) -> RedisFleet:
    """The shared fleet, FLUSHALLed (shards and cluster masters) before the test.

    Flushing before rather than after leaves a failed test's data in place for inspection.
    """
    redis_fleet.flushall()
    return redis_fleet


@pytest.fixture
def make_fleet() -> Iterator[Callable[..., RedisFleet]]:
    """Factory for a test's own started fleet(s) (RedisFleet keyword arguments, defaults to
    3 shards + 3x1 cluster); every fleet it made is stopped when the test ends."""
    fleets: list[RedisFleet] = []

    def factory(**kwargs: Any) -> RedisFleet:
        fleet = RedisFleet(**kwargs)
        fleets.append(fleet)  # before start(): stop() is idempotent and safe on a failed start
        return fleet.start()

    yield factory
    for fleet in fleets:
        fleet.stop()
