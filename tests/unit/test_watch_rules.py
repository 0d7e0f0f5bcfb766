"""Presence as clients use it (chat/core/watch.py) over the fakes: ``online``, ``watch`` and
``unwatch`` (transitions reach watchers on any node), and ``members`` pages."""

from __future__ import annotations

import pytest
from fakes.failures import fail_once

from chat import channels
from chat.core.member_presence import WATCH_MAX


async def test_online_answers_for_each_user_asked(node, other):
    ann = await node.connect("ann")
    await other.connect("bob")
    ack = await ann.call("online", {"users": ["bob", "cid", "bob", "nobody"]})
    assert ack["online"] == {"bob": True, "cid": False, "nobody": False}


async def test_a_watcher_hears_transitions_until_it_unwatches(node, other, world):
    ann = await node.connect("ann")
    ack = await ann.call("watch", {"users": ["bob"]})
    assert ack["online"] == {"bob": False}
    bob = await other.connect("bob")
    [event] = ann.events("presence")
    assert (event["user"], event["online"]) == ("bob", True)
    await bob.close()
    world.clock.advance(6)  # the grace period (5 s) passed without a reconnect
    await other.presence._sweeping()
    assert [e["online"] for e in ann.events("presence")] == [True, False]
    assert (await ann.call("unwatch", {"users": ["bob"]}))["ok"]
    await other.connect("bob")
    assert len(ann.events("presence")) == 2


async def test_a_socket_watches_a_bounded_number_of_users(node):
    ann = await node.connect("ann")
    ann.conn.watching = frozenset(f"u{i}" for i in range(WATCH_MAX))
    ack = await ann.call("watch", {"users": ["bob"]})
    assert ack["error"]["code"] == "too_many"
    assert "bob" not in ann.conn.watching


async def test_members_are_online_first_then_by_name_in_pages(node, world):
    world.accounts.add("zed", "aaron")  # sorted by name, not id
    ann = await node.connect("ann")
    await node.connect("dan")
    first = await ann.call("members", {"room": "lobby", "limit": 3})
    rows = [(m["id"], m["online"]) for m in first["members"]]
    assert rows == [("ann", True), ("dan", True), ("zed", False)]
    assert (first["count"], first["has_more"]) == (5, True)
    rest = await ann.call("members", {"room": "lobby", "offset": 3, "limit": 3})
    assert [m["id"] for m in rest["members"]] == ["bob", "cid"] and rest["has_more"] is False
    assert first["members"][2] == {"id": "zed", "name": "aaron", "online": False, "role": "member"}


@pytest.mark.parametrize(("room", "count"), [("dm:ann:bob", 2), ("dm:ann:ann", 1)])
async def test_a_dm_lists_its_users(node, room, count):
    ann = await node.connect("ann")
    ack = await ann.call("members", {"room": room})
    assert ack["count"] == count and ack["members"][0]["id"] == "ann"


async def test_a_watch_whose_channel_could_not_be_followed_is_not_kept(node, other):
    """The failed user is not counted as watched, so the client's retry follows them."""
    ann = await node.connect("ann")
    bob = channels.presence_channel("bob")
    fail_once(node.connections._subscriptions, "_baselines", lambda ch: ch == bob)
    assert (await ann.call("watch", {"users": ["bob", "cid"]}))["error"]["code"] == "unavailable"
    assert ann.conn.watching == {"cid"}
    assert (await ann.call("watch", {"users": ["bob"]}))["ok"]
    await other.connect("bob")
    await node.settle()
    assert [e["user"] for e in ann.events("presence")] == ["bob"]


async def test_watching_a_user_reads_nothing_of_their_conversations(node, world):
    """A presence channel carries no room: following it must not read the watched user's
    DMs (their list, each one's last seq), which cost one read per DM of theirs per watch."""
    ann, dan = await node.connect("ann"), await node.connect("dan")
    for peer in ("bob", "cid"):
        await node.connect(peer)
        assert (await ann.call("dm", {"to": peer, "text": "hi"}))["ok"]
    asked: list[list[str]] = []
    real = world.history.last_seqs

    async def last_seqs(rooms):
        asked.append(sorted(rooms))
        return await real(rooms)

    world.history.last_seqs = last_seqs
    assert (await dan.call("watch", {"users": ["ann"]}))["ok"]
    assert asked == []
