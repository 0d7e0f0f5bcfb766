"""One suite, two implementations: the contract of ``ShardSetStore`` (chat/ports.py) over the
in-memory fake (tests/fakes/shardset.py) and over the Redis Cluster adapter (its CAS script),
and the node leases' ``live_nodes`` beside it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from fakes import Clock, MemoryPresence, MemoryShardSet, PresenceState
from redis_fixtures import access

from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.presence import ClusterPresence
from chat.adapters.cluster.roster import ClusterRoster
from chat.adapters.cluster.shardset import ClusterShardSet
from chat.models import PUBLISH, RECEIVE, Layout

ONE = {"a": "redis://a:6379"}
TWO = {"a": "redis://a:6379", "b": "rediss://b.example:6380"}


@dataclass
class Stores:
    shardset: Any
    presence: Any  # a factory: node id -> its presence store


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    if request.param == "memory":
        state = PresenceState(Clock())
        yield Stores(MemoryShardSet(), lambda node: MemoryPresence(state, node))
        return
    fleet = request.getfixturevalue("redis_clean")
    seeds = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in fleet.cluster_nodes)]
    cluster = Cluster(seeds, node_id="test", access=access(fleet))
    await cluster.start(10)
    roster = ClusterRoster(cluster)
    try:
        yield Stores(ClusterShardSet(cluster), lambda node: ClusterPresence(cluster, node, roster))
    finally:
        await cluster.stop()


async def test_the_record_is_created_once(stores):
    assert await stores.shardset.read() is None
    assert await stores.shardset.write(Layout(1, ONE), None)
    assert not await stores.shardset.write(Layout(1, TWO), None)  # a second node, late
    assert await stores.shardset.read() == Layout(1, ONE)


async def test_a_change_is_written_only_over_the_step_it_read(stores):
    store = stores.shardset
    await store.write(Layout(1, ONE), None)
    receive = Layout(2, TWO, ONE, RECEIVE)
    assert await store.write(receive, (1, "steady"))
    assert not await store.write(Layout(2, ONE, TWO, RECEIVE), (1, "steady"))  # the loser
    assert await store.read() == receive
    publish = Layout(2, TWO, ONE, PUBLISH)
    assert not await store.write(publish, (2, PUBLISH))
    assert await store.write(publish, (2, RECEIVE))
    assert await store.read() == publish


async def test_acknowledgements_are_kept_per_node(stores):
    store = stores.shardset
    assert await store.acks() == {}
    await store.ack("n1", (1, "steady"))
    await store.ack("n2", (1, "steady"))
    await store.ack("n1", (2, RECEIVE))
    assert await store.acks() == {"n1": (2, RECEIVE), "n2": (1, "steady")}
    await store.forget(["n2", "never-acked"])
    assert await store.acks() == {"n1": (2, RECEIVE)}


async def test_live_nodes_are_those_with_a_running_lease(stores):
    one, two = stores.presence("n1"), stores.presence("n2")
    assert await one.live_nodes() == []
    await one.renew("i1", 30_000)
    await two.renew("i2", 30_000)
    assert await one.live_nodes() == ["n1", "n2"]
    await two.release("i2")
    assert await one.live_nodes() == ["n1"]
