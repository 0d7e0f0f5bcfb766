"""Real Redis servers (redis_fixtures), real chat node processes (stack), real Socket.IO
clients (sioclient): the fixtures of the end-to-end tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser_fixtures import browser, people  # noqa: F401
from redis_fixtures import make_fleet, redis_clean, redis_fleet, redis_fleet_acl  # noqa: F401
from stack import Stack, start_stack

from devstack.cluster import RedisFleet


@pytest.fixture(scope="session")
def stack(
    redis_fleet: RedisFleet,  # noqa: F811 - pytest fixture injection
    tmp_path_factory: pytest.TempPathFactory,
    jwt_secret: str,
) -> Iterator[Stack]:
    """Two chat nodes on the shared fleet, for tests that do not kill nodes.

    Limits are raised so that tests sharing it do not trip over each other; the limits have
    their own tests with their own nodes.  The login cool-down is short so that its test can
    wait it out."""
    with start_stack(
        redis_fleet,
        tmp_path_factory.mktemp("nodes"),
        jwt_secret,
        nodes=2,
        **SHARED_LIMITS,
    ) as s:
        yield s


SHARED_LIMITS = {
    "login_ip_rate": "100000",
    "login_cooldown": "1",
    "login_cooldown_max": "2",
    "send_rate": "10000",
    "send_burst": "10000",
    "event_limits": "*=10000/10000",
    "connections_per_user": "1000",
    "rooms_per_user": "10000",
    "rooms_created_per_user": "10000",
}
