"""Who is online (chat/core/presence.py) over the fakes: online with the first connection on any
node, offline when the last is gone and the grace period passed, no flap on a quick reconnect,
the bound on connections per user, and the purge of a node whose lease lapsed."""

from __future__ import annotations

import pytest
from fakes.failures import fail_once
from fakes.node import MemoryNode

from chat.core import presence
from chat.errors import ChatError


async def watcher(node):
    dan = await node.connect("dan")
    await dan.call("watch", {"users": ["ann"]})
    return dan


def transitions(client):
    return [e["online"] for e in client.events("presence")]


async def test_online_once_for_many_connections_offline_after_the_grace(node, other, world):
    dan = await watcher(other)
    first, second = await node.connect("ann"), await other.connect("ann")
    assert world.presence.is_online("ann") and transitions(dan) == [True]
    await first.close()
    await second.close()
    world.clock.advance(4)
    await node.presence._sweeping()
    assert world.presence.is_online("ann")  # still within the grace period
    world.clock.advance(2)
    await node.presence._sweeping()
    await other.presence._sweeping()  # claimed by one node: announced once
    assert transitions(dan) == [True, False] and not world.presence.is_online("ann")


async def test_a_reconnect_within_the_grace_period_does_not_flap(node, other, world):
    dan = await watcher(node)
    ann = await node.connect("ann")
    await ann.close()
    world.clock.advance(2)
    await other.connect("ann")
    world.clock.advance(10)
    await node.presence._sweeping()
    assert transitions(dan) == [True] and world.presence.is_online("ann")


async def test_connections_per_user_are_bounded_across_nodes(world):
    one, two = (MemoryNode(world, n, per_user=2) for n in ("n1", "n2"))
    await one.connect("ann")
    await two.connect("ann")
    with pytest.raises(ChatError) as err:
        await one.connect("ann")
    assert err.value.code == "too_many_connections"
    assert len(world.presence.conns["ann"]) == 2
    assert len(one.connections.by_sid) == 1  # the refused handshake was undone


async def test_a_dead_nodes_users_go_offline_unless_connected_elsewhere(world):
    dead, alive = MemoryNode(world, "n1"), MemoryNode(world, "n2")
    await dead.presence.start()
    await alive.presence.start()
    try:
        dan = await watcher(alive)
        await dead.connect("ann")
        await dead.connect("bob")
        await alive.connect("bob")
        world.clock.advance(16)  # n1's lease (15 s) lapsed: it stopped renewing
        await alive.presence._renewing()
        assert not world.presence.is_online("ann") and world.presence.is_online("bob")
        assert transitions(dan) == [True, False]
        assert alive.presence.purged == 2
    finally:
        for node in (dead, alive):
            await node.presence.stop()


async def test_a_node_back_from_a_long_pause_registers_its_sockets_again(world):
    node, purger = MemoryNode(world, "n1"), MemoryNode(world, "n2")
    await node.presence._store.renew(node.presence.incarnation, 15_000)
    await purger.presence._store.renew(purger.presence.incarnation, 15_000)
    await node.connect("ann")
    old = node.presence.incarnation
    world.clock.advance(16)
    await purger.presence._renewing()  # purges n1 while it sleeps
    assert not world.presence.is_online("ann")
    await node.presence._renewing()  # wakes: its lease lapsed
    assert node.presence.incarnation != old and world.presence.is_online("ann")


async def test_a_disconnect_the_store_missed_is_unregistered_by_the_next_lease_round(world):
    """Else the socket stays listed for good: its user online, and one connection fewer left
    to them on every node."""
    node = MemoryNode(world, "n1", per_user=2)
    first, second = await node.connect("ann"), await node.connect("ann")
    fail_once(node.presence._store, "unregister")
    with pytest.raises(ChatError):
        await first.close()
    assert list(world.presence.conns["ann"]) == [f"n1/{first.sid}", f"n1/{second.sid}"]
    await node.presence._renewing()
    assert list(world.presence.conns["ann"]) == [f"n1/{second.sid}"]
    assert await node.connect("ann")  # the slot is free again
    await second.close()


async def test_a_node_stopping_unregisters_what_its_store_missed_before_its_lease_goes(world):
    node = MemoryNode(world, "n1")
    await node.presence.start()
    ann = await node.connect("ann")
    fail_once(node.presence._store, "unregister")
    with pytest.raises(ChatError):
        await ann.close()
    await node.presence.stop()
    assert not world.presence.conns.get("ann")
    world.clock.advance(60)
    later = MemoryNode(world, "n2")
    await later.presence._sweeping()
    assert not world.presence.is_online("ann")


async def test_a_settle_that_failed_is_tried_again_next_round(node, world):
    """The claim took the user off the grace list: nobody else would settle them, and they
    would be shown online for good."""
    dan = await watcher(node)
    ann, bob = await node.connect("ann"), await node.connect("bob")
    await ann.close()
    await bob.close()
    world.clock.advance(6)
    failed = fail_once(node.presence._store, "settle", lambda user_id, _: user_id == "ann")
    await node.presence._sweeping()  # bob, claimed with her, is settled all the same
    assert failed and world.presence.is_online("ann") and not world.presence.is_online("bob")
    await node.presence._sweeping()
    assert not world.presence.is_online("ann")
    assert transitions(dan) == [True, False]  # ann's, announced once
    await node.presence._sweeping()
    assert transitions(dan) == [True, False]


async def test_an_offline_whose_announcement_failed_is_announced_next_round(
    node, world, monkeypatch
):
    ticks = iter(range(1_000, 10_000))
    monkeypatch.setattr(presence, "now_ms", lambda: next(ticks))  # each call a later ms
    dan = await watcher(node)
    ann = await node.connect("ann")
    await ann.close()
    world.clock.advance(6)
    failed = fail_once(node.presence, "_announce", lambda user_id, **_: user_id == "ann")
    await node.presence._sweeping()
    assert failed and not world.presence.is_online("ann") and transitions(dan) == [True]
    await node.presence._sweeping()
    assert transitions(dan) == [True, False]
    await node.presence._sweeping()
    assert transitions(dan) == [True, False]  # once
