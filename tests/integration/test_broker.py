"""The sharded broker against real Redis shards (no chat nodes involved), open ones and ones
that require an ACL user and password."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest
from redis_fixtures import AUTH_VARIANTS, access, clean_fleet
from stack import new_user_id

from chat.adapters.shards.broker import ShardedBroker
from devstack.cluster import RedisFleet

TIMEOUT = 10.0


@pytest.fixture(params=AUTH_VARIANTS)
def redis_clean(request: pytest.FixtureRequest) -> RedisFleet:
    """Every test here runs on the open fleet and on the one with an ACL user."""
    return clean_fleet(request)


class Inbox:
    """Message handler that lets a test await deliveries."""

    def __init__(self) -> None:
        self.got: defaultdict[str, asyncio.Queue[bytes]] = defaultdict(asyncio.Queue)

    async def __call__(self, channel: str, payload: bytes) -> None:
        self.got[channel].put_nowait(payload)

    async def next(self, channel: str) -> bytes:
        return await asyncio.wait_for(self.got[channel].get(), TIMEOUT)

    def count(self, channel: str) -> int:
        return self.got[channel].qsize()


@contextlib.asynccontextmanager
async def node(fleet: RedisFleet, name: str, **options: float) -> AsyncIterator[tuple]:
    inbox = Inbox()
    broker = ShardedBroker(fleet.shard_urls, inbox, node_id=name, access=access(fleet), **options)
    await broker.start(TIMEOUT)
    try:
        yield broker, inbox
    finally:
        await broker.stop()


def numsub(fleet: RedisFleet, broker: ShardedBroker, channel: str) -> int:
    shard = next(p for p in fleet.shards if p.url == broker.shard_for(channel).url)
    reply = shard.command("PUBSUB", "NUMSUB", channel)
    return int(reply[1]) if isinstance(reply, list) else int(reply[channel])


async def test_a_message_reaches_only_the_node_subscribed_to_its_channel(redis_clean):
    channel = "user:" + new_user_id()
    async with node(redis_clean, "a") as (a, inbox_a), node(redis_clean, "b") as (b, inbox_b):
        await a.subscribe([channel])
        await b.publish(channel, b"for a")
        assert await inbox_a.next(channel) == b"for a"
        # A marker channel that b does follow proves b's listener ran past the publish.
        await b.subscribe(["user:marker"])
        await a.publish("user:marker", b"m")
        assert await inbox_b.next("user:marker") == b"m"
        assert inbox_b.count(channel) == 0


async def test_each_channel_lives_on_the_shard_the_ring_picks(redis_clean):
    channels = [f"room:{i}" for i in range(30)]
    async with node(redis_clean, "a") as (a, _):
        await a.subscribe(channels)
        for proc in redis_clean.shards:
            listed = proc.command("PUBSUB", "CHANNELS", "room:*")
            expected = {c for c in channels if a.shard_for(c).url == proc.url}
            assert set(listed) == expected
        assert len({a.shard_for(c).name for c in channels}) == 3  # all shards in use


async def test_one_subscription_per_channel_per_node_however_many_local_users(redis_clean):
    channel = "room:" + new_user_id()
    async with node(redis_clean, "a") as (a, _), node(redis_clean, "b") as (b, _):
        for _ in range(5):
            await a.subscribe([channel])
        await b.subscribe([channel])
        assert numsub(redis_clean, a, channel) == 2
        for _ in range(4):
            await a.unsubscribe([channel])
        # Commands on one connection run in order: once a later SUBSCRIBE on the same shard
        # is confirmed, any UNSUBSCRIBE sent before it would have taken effect.
        barrier = next(
            f"room:barrier{i}"
            for i in range(1000)
            if a.shard_for(f"room:barrier{i}") is a.shard_for(channel)
        )
        await a.subscribe([barrier])
        assert numsub(redis_clean, a, channel) == 2
        await a.unsubscribe([channel])
        shard = a.shard_for(channel)
        await asyncio.wait_for(shard.wait_until(lambda s: channel not in s.subscribed), TIMEOUT)
        assert numsub(redis_clean, a, channel) == 1


async def test_a_channel_followed_again_before_its_unsubscribe_is_answered_waits_for_it(
    redis_clean,
):
    """Let go and followed again within one round trip: the server drops the channel
    (UNSUBSCRIBE) before it takes it back (SUBSCRIBE), so the channel is not live until the
    second answer; a follower told it was at once would read its baselines too early."""
    channel = "room:" + new_user_id()
    async with node(redis_clean, "a") as (a, inbox), node(redis_clean, "b") as (b, _):
        await a.subscribe([channel])
        shard = a.shard_for(channel)
        server = next(p for p in redis_clean.shards if p.url == shard.url)
        server.command("CLIENT", "PAUSE", 2000, "ALL")  # it reads, and answers nothing, for 2 s
        shard.unwant([channel])
        # Not live from the moment the UNSUBSCRIBE is written (its answer waits for the pause).
        await asyncio.wait_for(shard.wait_until(lambda s: channel not in s.subscribed), 1)
        shard.want([channel])
        again = asyncio.ensure_future(shard.wait_subscribed([channel]))
        for _ in range(20):  # turns of the loop, not a wait: nothing can answer while paused
            await asyncio.sleep(0)
        assert not again.done() and channel not in shard.subscribed
        await asyncio.wait_for(again, TIMEOUT)  # the SUBSCRIBE's answer, after the pause
        assert channel in shard.subscribed
        await b.publish(channel, b"live again")
        assert await inbox.next(channel) == b"live again"


async def test_concurrent_subscribes_are_batched_and_all_confirmed(redis_clean):
    channels = [f"user:{new_user_id()}" for _ in range(500)]
    async with node(redis_clean, "a") as (a, inbox):
        await asyncio.gather(*(a.subscribe([c]) for c in channels))
        assert a.is_ready()
        assert sum(len(s.subscribed) for s in a.shards.values()) == 500
        await asyncio.gather(*(a.publish(c, c.encode()) for c in channels))
        for c in channels:
            assert await inbox.next(c) == c.encode()


@pytest.mark.slow
async def test_a_killed_shard_gets_every_channel_back_within_5_s(make_fleet):
    # With a password: every reconnection authenticates again.
    fleet = make_fleet(shards=3, masters=0, username="chat", password="reconnect-pw")
    channels = [f"user:{i}" for i in range(60)]
    async with node(fleet, "a") as (a, inbox), node(fleet, "b") as (b, _):
        await a.subscribe(channels)
        victim = fleet.shards[1]
        shard = a.shards["shard1"]
        lost = [c for c in channels if a.shard_for(c) is shard]
        assert lost
        victim.kill()
        await asyncio.wait_for(shard.wait_until(lambda s: not s.connected), TIMEOUT)
        assert not a.is_ready()
        victim.restart()
        started = time.monotonic()
        await asyncio.wait_for(a.wait_ready(), 5.0)
        assert time.monotonic() - started < 5.0
        assert set(victim.command("PUBSUB", "CHANNELS", "user:*")) == set(lost)
        for c in lost:
            await b.publish(c, b"after restart")
            assert await inbox.next(c) == b"after restart"


@pytest.mark.slow
async def test_a_silent_connection_is_detected_and_replaced(make_fleet):
    """A SIGSTOPped shard keeps TCP open but answers nothing: only the liveness probe can tell.
    Short probe settings keep the test quick; production uses ping 5 s / dead after 15 s."""
    fleet = make_fleet(shards=1, masters=0)
    async with node(fleet, "a", ping_interval=0.5, dead_after=1.5) as (a, inbox):
        await a.subscribe(["user:x"])
        shard = a.shards["shard0"]
        fleet.shards[0].pause()
        try:
            started = time.monotonic()
            await asyncio.wait_for(shard.wait_until(lambda s: not s.connected), TIMEOUT)
            assert time.monotonic() - started < 1.5 + 0.5 + 1.0
        finally:
            fleet.shards[0].resume()
        await asyncio.wait_for(a.wait_ready(), TIMEOUT)
        await a.publish("user:x", b"alive")
        assert await inbox.next("user:x") == b"alive"
        assert shard.reconnects >= 1
