"""A change of the shard set on running brokers (``chat/adapters/shards/layout.py``), against
real Redis shards: a shard added, then another removed, with two nodes stepping through the
phases at different moments, as the coordinator allows.  Every payload published in any
phase reaches every follower exactly once."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator

from redis_fixtures import access
from stack import new_user_id

from chat.adapters.shards.broker import ShardedBroker
from chat.adapters.shards.layout import PUBLISH, RECEIVE, Layout, Routing
from devstack.cluster import RedisFleet

TIMEOUT = 10.0
CHANNELS = 60


class Inbox:
    def __init__(self) -> None:
        self.got: Counter[tuple[str, bytes]] = Counter()
        self.arrived = asyncio.Condition()

    async def __call__(self, channel: str, payload: bytes) -> None:
        if payload.startswith(b"\x00peers"):
            return  # the nodes' own hello/here/bye
        self.got[channel, payload] += 1
        async with self.arrived:
            self.arrived.notify_all()

    async def wait_for(self, expected: Counter[tuple[str, bytes]]) -> None:
        async with asyncio.timeout(TIMEOUT), self.arrived:
            await self.arrived.wait_for(lambda: all(self.got[k] >= n for k, n in expected.items()))


@contextlib.asynccontextmanager
async def node(
    fleet: RedisFleet, name: str, urls: dict[str, str], adopt: Layout | None = None
) -> AsyncIterator[tuple]:
    inbox = Inbox()
    broker = ShardedBroker(urls, inbox, node_id=name, access=access(fleet))
    if adopt is not None:  # the shard set's record, read before the listeners start
        broker.adopt(adopt)
    await broker.start(TIMEOUT)
    try:
        yield broker, inbox
    finally:
        await broker.stop()


async def exchange(nodes, channels: list[str], tag: str) -> None:
    """Each node publishes once on every channel; every node must get each payload once."""
    expected: Counter[tuple[str, bytes]] = Counter()
    for index, (broker, _) in enumerate(nodes):
        for channel in channels:
            payload = f"{tag}:{index}:{channel}".encode()
            assert (await broker.publish_each([channel], payload)) == [None]
            expected[channel, payload] += 1
    for _, inbox in nodes:
        await inbox.wait_for(expected)
    # A marker published after everything proves nothing more is on its way.
    marker = f"room:marker-{tag}"
    for broker, _ in nodes:
        await broker.subscribe([marker])
    await nodes[0][0].publish(marker, b"end")
    for _, inbox in nodes:
        await inbox.wait_for(Counter({(marker, b"end"): 1}))
        assert {k: n for k, n in inbox.got.items() if k in expected} == dict(expected), tag


async def step(nodes, layout: Layout, channels: list[str], tag: str) -> None:
    """Every node to ``layout``, one after the other, with an exchange in between (two nodes
    in different phases are what the coordinator allows)."""
    for broker, _ in nodes:
        assert await broker.apply(layout)
        await exchange(nodes, channels, f"{tag}-{broker.layout.phase}-{id(broker)}")


async def test_adding_then_removing_a_shard_loses_and_doubles_nothing(redis_fleet):
    urls = redis_fleet.shard_urls
    first, added = dict(list(urls.items())[:2]), dict(urls)
    without = {n: u for n, u in urls.items() if n != next(iter(urls))}
    channels = [f"user:{new_user_id()}" for _ in range(CHANNELS)]
    async with node(redis_fleet, "a", first) as a, node(redis_fleet, "b", first) as b:
        nodes = [a, b]
        for broker, _ in nodes:
            await broker.subscribe(channels)
        await exchange(nodes, channels, "before")
        for phase in (RECEIVE, PUBLISH):
            await step(nodes, Layout(1, added, first, phase), channels, "add")
        await step(nodes, Layout(1, added), channels, "added")
        moved = {
            c for c in channels if Routing(Layout(0, first)).publish_on(c) != a[0].shard_for(c).name
        }
        assert moved, "consistent hashing moves some channels to the new shard"
        for phase in (RECEIVE, PUBLISH):
            await step(nodes, Layout(2, without, added, phase), channels, "remove")
        await step(nodes, Layout(2, without), channels, "removed")
        assert set(a[0].shards) == set(without)  # the removed shard's connections are gone
        for broker, _ in nodes:
            await broker.unsubscribe(channels)


async def test_a_node_that_starts_during_a_change_joins_its_current_phase(redis_fleet):
    urls = redis_fleet.shard_urls
    first, added = dict(list(urls.items())[:2]), dict(urls)
    channels = [f"user:{new_user_id()}" for _ in range(CHANNELS)]
    receive = Layout(1, added, first, RECEIVE)
    async with node(redis_fleet, "a", first) as a:
        await a[0].subscribe(channels)
        assert await a[0].apply(receive)
        # Started with a stale CHAT_SHARDS (only the first shard): the record wins.
        stale = dict(list(first.items())[:1])
        async with node(redis_fleet, "late", stale, adopt=receive) as late:
            assert late[0].layout == receive and set(late[0].shards) == set(added)
            await late[0].subscribe(channels)
            nodes = [a, late]
            await exchange(nodes, channels, "joined")
            await step(nodes, Layout(1, added, first, PUBLISH), channels, "join-publish")
            await step(nodes, Layout(1, added), channels, "join-steady")
            for broker, _ in nodes:
                await broker.unsubscribe(channels)
