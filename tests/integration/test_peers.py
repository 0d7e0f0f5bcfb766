"""Local delivery for channels no other node follows (chat/adapters/shards/peers.py): against real
Redis shards, and the announcement rules on their own with a fake publish."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis_fixtures import clean_fleet
from stack import new_user_id
from test_broker import TIMEOUT, node

from chat.adapters.shards import peers as peers_module
from chat.adapters.shards.peers import PREFIX, Peers
from devstack.cluster import RedisFleet


@pytest.fixture(params=["open"])
def fleet(request: pytest.FixtureRequest) -> RedisFleet:
    return clean_fleet(request)


def publishes(fleet: RedisFleet) -> int:
    """PUBLISH calls on every shard since the last reset."""
    total = 0
    for shard in fleet.shards:
        info = shard.command("INFO", "commandstats")
        text = info.decode() if isinstance(info, bytes) else str(info)
        for line in text.splitlines():
            if line.startswith("cmdstat_publish:"):
                total += int(line.split("calls=")[1].split(",")[0])
    return total


def reset_stats(fleet: RedisFleet) -> None:
    for shard in fleet.shards:
        shard.command("CONFIG", "RESETSTAT")


async def test_a_channel_only_this_node_follows_is_delivered_without_redis(fleet):
    channel = "user:" + new_user_id()
    async with node(fleet, "a") as (a, inbox):
        await a.subscribe([channel])
        reset_stats(fleet)
        await a.publish(channel, b"to myself")
        assert await inbox.next(channel) == b"to myself"
        assert a.local_deliveries == 1
        assert publishes(fleet) == 0


async def test_a_newcomer_gets_everything_published_after_it_subscribed(fleet):
    channel = "user:" + new_user_id()
    async with node(fleet, "a") as (a, inbox_a), node(fleet, "b") as (b, inbox_b):
        await a.subscribe([channel])
        assert a.peers.alone(channel)
        # b's subscribe returns once a answered its hello, so a publishes from then on.
        await b.subscribe([channel])
        assert not a.peers.alone(channel) and not b.peers.alone(channel)
        await a.publish(channel, b"after b came")
        assert await inbox_b.next(channel) == b"after b came"
        assert await inbox_a.next(channel) == b"after b came"
        assert a.local_deliveries == 0


async def test_when_the_other_follower_leaves_the_channel_turns_local_again(fleet):
    channel = "user:" + new_user_id()
    async with node(fleet, "a") as (a, inbox_a), node(fleet, "b") as (b, _):
        await a.subscribe([channel])
        await b.subscribe([channel])
        await b.unsubscribe([channel])
        # b no longer follows the channel, so it publishes there: a reads this after the bye.
        await b.publish(channel, b"marker")
        assert await inbox_a.next(channel) == b"marker"
        await a.publish(channel, b"published")  # unknown again: published, and a new hello
        assert await inbox_a.next(channel) == b"published"
        await a.peers.settled([channel])
        await a.publish(channel, b"local")
        assert await inbox_a.next(channel) == b"local"
        assert a.local_deliveries == 1


async def test_rooms_channels_are_always_published(fleet):
    channel = "room:" + new_user_id()
    async with node(fleet, "a") as (a, inbox):
        await a.subscribe([channel])
        await a.publish(channel, b"m")
        assert await inbox.next(channel) == b"m"
        assert a.local_deliveries == 0


# --- the rules, with a fake publish ----------------------------------------------------------


class Wire:
    """Publish of a fake shard: records what was said; ``receivers`` is PUBLISH's answer."""

    def __init__(self) -> None:
        self.said: list[tuple[str, bytes]] = []
        self.receivers = 1
        self.generation: int | None = 0
        self.spoke = asyncio.Event()  # set whenever something is published

    async def publish(self, channel: str, payload: bytes) -> int:
        self.said.append((channel, payload))
        self.spoke.set()
        return self.receivers

    def words(self) -> list[str]:
        return [p[len(PREFIX) :].decode().split()[0] for _, p in self.said]


def peers(wire: Wire, handler: Any = None) -> Peers:
    async def ignore(channel: str, payload: bytes) -> None:
        return None

    return Peers(
        "n", handler or ignore, wire.publish, lambda _: wire.generation, tracked=lambda c: True
    )


async def test_a_renewed_subscription_is_not_alone_until_announced_again():
    wire = Wire()
    p = peers(wire)
    p.expect(["user:x"])
    await p.announce(["user:x"])
    assert p.alone("user:x")
    wire.generation = 1  # the shard connection was replaced: hellos may have been missed
    assert not p.alone("user:x")
    await p.settled(["user:x"])
    assert wire.words() == ["hello", "hello"]
    assert p.alone("user:x")


async def test_a_follower_that_never_answers_keeps_the_channel_published(monkeypatch):
    monkeypatch.setattr(peers_module, "ANSWER_TIMEOUT", 0.05)
    wire = Wire()
    wire.receivers = 2  # someone else received the hello but says nothing
    p = peers(wire)
    p.expect(["user:x"])
    await asyncio.wait_for(p.announce(["user:x"]), TIMEOUT)
    assert not p.alone("user:x")


async def test_answers_count_only_when_addressed_to_this_instance():
    wire = Wire()
    wire.receivers = 2
    p = peers(wire)
    p.expect(["user:x"])
    announcing = asyncio.ensure_future(p.announce(["user:x"]))
    await wire.spoke.wait()  # the hello is out
    await p.on_payload("user:x", PREFIX + b"here other someone-else")
    assert p._states["user:x"].answers == set()  # an answer to another node's hello
    await p.on_payload("user:x", PREFIX + b"here other " + p.instance.encode())
    await asyncio.wait_for(announcing, TIMEOUT)
    assert not p.alone("user:x")  # other follows the channel too


async def test_hellos_are_answered_and_other_payloads_passed_on():
    passed: list[bytes] = []

    async def handler(channel: str, payload: bytes) -> None:
        passed.append(payload)

    wire = Wire()
    p = peers(wire, handler)
    p.expect(["user:x"])
    await p.announce(["user:x"])
    await p.on_payload("user:x", PREFIX + b"hello " + p.instance.encode())  # its own: ignored
    wire.spoke.clear()
    await p.on_payload("user:x", PREFIX + b"hello other")
    await p.on_payload("user:x", b'{"kind":"emit"}')
    await wire.spoke.wait()  # the answer goes out from a task of its own
    await p.close()
    assert passed == [b'{"kind":"emit"}']
    assert wire.said[-1] == ("user:x", PREFIX + b"here " + p.instance.encode() + b" other")
    assert not p.alone("user:x")


async def test_no_hello_while_not_subscribed_and_one_once_subscribed():
    wire = Wire()
    wire.generation = None  # the shard is down: the subscription is not confirmed
    p = peers(wire)
    p.expect(["user:x"])
    await asyncio.wait_for(p.announce(["user:x"]), TIMEOUT)  # at once: nobody could answer
    assert wire.said == [] and not p.alone("user:x")
    wire.generation = 3  # subscribed now: the next look announces
    assert not p.alone("user:x")
    await p.settled(["user:x"])
    assert wire.words() == ["hello"] and p.alone("user:x")


async def test_a_single_publish_that_fails_raises(fleet):
    channel = "user:" + new_user_id()
    async with node(fleet, "a") as (a, _):
        shard = a.shard_for(channel)

        def refuse(ch: str, payload: bytes) -> asyncio.Future[int]:
            failed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            failed.set_exception(ConnectionError("shard gone"))
            return failed

        shard.enqueue_publish = refuse  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            await a.publish(channel, b"m")
        assert [type(e) for e in await a.publish_each([channel], b"m")] == [ConnectionError]
