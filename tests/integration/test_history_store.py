"""The history adapter against the real Redis Cluster (3 masters + 3 replicas), open and
with an ACL user and password."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from redis_fixtures import AUTH_VARIANTS, access, clean_fleet

from chat import keys
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.history import ClusterHistory
from chat.models import UserRef
from devstack.cluster import RedisFleet

ANN = UserRef("ann", "Ann")


@pytest.fixture(params=AUTH_VARIANTS)
def redis_clean(request: pytest.FixtureRequest) -> RedisFleet:
    """Every test here runs on the open fleet and on the one with an ACL user."""
    return clean_fleet(request)


def seeds(fleet: RedisFleet) -> list[tuple[str, int]]:
    return [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in fleet.cluster_nodes)]


async def history(fleet: RedisFleet, **options) -> tuple[Cluster, ClusterHistory]:
    cluster = Cluster(seeds(fleet), node_id="test", access=access(fleet))
    await cluster.start(10)
    return cluster, ClusterHistory(cluster, **options)


async def append(store: ClusterHistory, room: str, n: int, token: str | None = None):
    return await store.append(
        secrets.token_hex(4), room, ANN, f"m{n}", None, token or secrets.token_hex(6)
    )


async def test_appends_number_the_room_and_are_replicated(redis_clean):
    cluster, store = await history(redis_clean)
    try:
        room = "r" + secrets.token_hex(4)
        assert cluster.has_replica(cluster.master_of(keys.room_seq_key(room)))
        results = await asyncio.gather(*(append(store, room, n) for n in range(50)))
        assert sorted(m.seq for m, _ in results) == list(range(1, 51))
        assert all(created for _, created in results)
        assert await store.last_seq(room) == 50
        assert await store.last_seqs([room, "empty-room"]) == {room: 50, "empty-room": 0}
        # A repeated token answers the stored message: same id, seq, text and time.
        first, _ = await append(store, room, 99, token="t")
        again, created = await append(store, room, 100, token="t")
        assert (again, created) == (first, False)
    finally:
        await cluster.stop()


async def test_retention_by_count_keeps_the_newest(redis_clean):
    cluster, store = await history(redis_clean, max_len=100)
    try:
        room = "r" + secrets.token_hex(4)
        for n in range(400):
            await append(store, room, n)
        kept, has_more = await store.page(room, before=None, after=0, limit=100)
        # MAXLEN ~ trims whole stream nodes: about the last 100 are kept, never the oldest.
        assert 100 <= len(await store.between(room, 0, 400, 1000)) < 400
        assert kept[0].seq > 1 and has_more
        newest, _ = await store.page(room, before=None, after=None, limit=5)
        assert [m.seq for m in newest] == [396, 397, 398, 399, 400]
    finally:
        await cluster.stop()


async def test_retention_by_age_drops_expired_messages(redis_clean):
    cluster, store = await history(redis_clean, max_age_s=0.001)
    try:
        room = "r" + secrets.token_hex(4)
        for n in range(64):  # age trimming runs every 64th append
            await append(store, room, n)
        left = await store.between(room, 0, 64, 100)
        assert len(left) < 64 and left[-1].seq == 64
    finally:
        await cluster.stop()
