"""Pytest fixtures backed by real local Redis/Valkey servers (see chat.localcluster).

Import them into tests/conftest.py::

    from redis_fixtures import make_fleet, redis_clean, redis_fleet  # noqa: F401

They are plain sync fixtures, so async tests can use them too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chat.localcluster import RedisFleet


@pytest.fixture(scope="session")
def redis_fleet() -> Iterator[RedisFleet]:
    """One shared fleet per session: shard0..shard2 + a 3-master/3-replica cluster.

    Do not kill/pause its processes; use ``make_fleet`` for fault tests.
    """
    with RedisFleet(shards=3, masters=3, replicas=1) as fleet:
        yield fleet


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
