"""Renaming (chat/core/profile.py) over the fakes: stored, then shown to the user's own sockets,
the members of their rooms, their watchers and their DM partners, on every node; later
messages carry the new name."""

from __future__ import annotations


async def test_a_rename_reaches_everyone_who_shows_the_name(node, other, world):
    ann, ann_phone = await node.connect("ann"), await other.connect("ann")
    bob, cid, dan = (
        await other.connect("bob"),
        await node.connect("cid"),
        await other.connect("dan"),
    )
    await ann.call("dm", {"to": "bob", "text": "hi"})
    await cid.call("watch", {"users": ["ann"]})
    ack = await ann.call("rename", {"name": "  Annie  "})
    assert ack == {"ok": True, "user": {"id": "ann", "name": "Annie"}}
    assert world.accounts.records["ann"].name == "Annie"
    await other.settle()
    renamed = {"id": "ann", "name": "Annie"}
    for client in (ann, ann_phone):  # by the control message, not by the channels they follow
        assert client.events("user") == [renamed], client.sid
    # Others may hear it on several channels (the lobby, the DM partner's, the watched user's).
    for client in (bob, cid, dan):
        assert renamed in client.events("user"), client.sid
    sent = await ann_phone.call("send", {"room": "lobby", "text": "new name"})
    assert sent["message"]["from"] == {"id": "ann", "name": "Annie"}


async def test_an_invisible_name_is_refused_and_nothing_is_told(node, world):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    ack = await ann.call("rename", {"name": "\u202e"})
    assert ack["error"]["code"] == "invalid_name"
    assert world.accounts.records["ann"].name == "Ann" and bob.events("user") == []
