"""Read positions, unread and mention counts, receipts and the receipts setting (issue 16,
design sections 4 and 5) over the fakes: the counting rules, forward-only positions, refusals
that change nothing, and what reaches which socket on which node."""

from __future__ import annotations

import pytest
from fakes.node import MemoryNode

from chat import config
from chat.core.mentions import mention_words


async def send(client, room, text, **extra):
    ack = await client.call("send", {"room": room, "text": text, **extra})
    assert ack["ok"], ack
    return ack["message"]


async def books(node, owner, *guests):
    await node.rooms.create(owner.conn.user, "books", "Books", True)
    for guest in guests:
        assert (await owner.call("invite", {"room": "books", "user": guest}))["ok"]


def counts(ack):
    room = ack["room"]
    return room["read_seq"], room["unread"], room["mentions"]


async def test_own_messages_are_never_unread_and_others_are_until_read(node, other):
    ann, bob = await node.connect("ann"), await other.connect("bob")
    await books(node, ann, "bob")
    for text in ("one", "two"):
        await send(bob, "books", text)
    await send(ann, "books", "mine")
    await send(bob, "books", "three")
    ack = await ann.call("read", {"room": "books", "seq": 0})
    assert ack == {"ok": True, "room": {"id": "books", "last_seq": 4, "read_seq": 0,
                                         "unread": 3, "mentions": 0}}  # fmt: skip
    assert counts(await ann.call("read", {"room": "books", "seq": 2})) == (2, 1, 0)
    assert counts(await ann.call("read", {"room": "books", "seq": 3})) == (3, 1, 0)
    assert counts(await ann.call("read", {"room": "books", "seq": 4})) == (4, 0, 0)
    # Bob's own count: ann's one message.
    assert counts(await bob.call("read", {"room": "books", "seq": 0})) == (0, 1, 0)


async def test_a_position_only_moves_forward_and_a_lower_seq_changes_nothing(node):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    for i in range(3):
        await send(bob, "lobby", f"m{i}")
    assert counts(await ann.call("read", {"room": "lobby", "seq": 2})) == (2, 1, 0)
    ann.clear()
    for seq in (2, 1, 0):
        ack = await ann.call("read", {"room": "lobby", "seq": seq})
        assert ack["ok"] and counts(ack) == (2, 1, 0)
    assert ann.events("read") == []  # nothing moved, nothing sent


async def test_a_seq_beyond_the_last_is_refused_and_changes_nothing(node, world):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    await send(bob, "lobby", "hello")
    ack = await ann.call("read", {"room": "lobby", "seq": 2})
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_seq"
    assert world.reads.positions_of == {} and ann.events("read") == []


async def test_only_members_read_a_room(node):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    await books(node, ann)
    await send(ann, "books", "secret")
    ack = await bob.call("read", {"room": "books", "seq": 1})
    assert ack["error"]["code"] == "forbidden"
    ack = await bob.call("read", {"room": "nope", "seq": 0})
    assert ack["error"]["code"] == "no_room"


async def test_mentions_by_name_and_by_id_count_apart_and_travel_on_the_message(node):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    await books(node, ann, "bob")
    named = await send(ann, "books", "thanks @BOB, and @ann too!")
    assert named["mentions"] == ["bob"]  # the sender is never mentioned
    listed = await send(ann, "books", "see this", mentions=["bob", "bob", "cid", "ann"])
    assert listed["mentions"] == ["bob"]  # cid is no member: not mentioned
    plain = await send(ann, "books", "mail ann@bob.example")
    assert "mentions" not in plain
    assert counts(await bob.call("read", {"room": "books", "seq": 0})) == (0, 3, 2)
    assert counts(await bob.call("read", {"room": "books", "seq": 1})) == (1, 2, 1)
    bad = await ann.call("send", {"room": "books", "text": "x", "mentions": ["a b"]})
    assert bad["error"]["code"] == "invalid_request"


async def test_a_dm_mentions_the_other_user_when_named(node):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    ack = await ann.call("dm", {"to": "bob", "text": "hey @bob"})
    assert ack["message"]["mentions"] == ["bob"]
    ack = await ann.call("dm", {"to": "bob", "text": "hey @cid"})
    assert "mentions" not in ack["message"]
    ack = await bob.call("read", {"room": "dm:ann:bob", "seq": 0})
    assert counts(ack) == (0, 2, 1)


async def test_counts_are_exact_up_to_99_then_100(node):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    for i in range(101):
        await send(bob, "lobby", f"hi @ann {i}")
    assert counts(await ann.call("read", {"room": "lobby", "seq": 0})) == (0, 100, 100)
    assert counts(await ann.call("read", {"room": "lobby", "seq": 2})) == (2, 99, 99)


def test_mention_words():
    assert mention_words("@Ann, @bob! x@cid @ann @") == ["ann", "bob"]
    assert len(mention_words(" ".join(f"@u{i}" for i in range(30)))) == 10


async def test_a_read_reaches_every_device_of_the_user_and_the_counts_agree(node, other):
    ann, phone, bob = (
        await node.connect("ann"),
        await other.connect("ann"),
        await node.connect("bob"),
    )
    for i in range(3):
        await send(bob, "lobby", f"m{i}")
    ack = await ann.call("read", {"room": "lobby", "seq": 2})
    await other.settle()
    event = {"room": "lobby", "seq": 2, "unread": 1, "mentions": 0}
    assert ann.events("read") == phone.events("read") == [event]
    tablet = await other.connect("ann")
    [session] = tablet.events("session")
    [lobby] = [r for r in session["rooms"] if r["id"] == "lobby"]
    assert (lobby["read_seq"], lobby["unread"]) == (2, 1) == counts(ack)[:2]
    assert bob.events("read") == []


async def test_receipts_in_a_dm_reach_the_other_user_only(node, other):
    ann, bob, bob_phone = (
        await node.connect("ann"),
        await node.connect("bob"),
        await other.connect("bob"),
    )
    await ann.call("dm", {"to": "bob", "text": "hi"})
    await bob.call("read", {"room": "dm:ann:bob", "seq": 1})
    await other.settle()
    assert ann.events("receipt") == [{"room": "dm:ann:bob", "user": "bob", "seq": 1}]
    assert bob.events("receipt") == bob_phone.events("receipt") == []
    history = await ann.call("history", {"room": "dm:ann:bob"})
    assert history["receipts"] == {"bob": 1}
    members = await ann.call("members", {"room": "dm:ann:bob"})
    assert {m["id"]: m.get("read_seq") for m in members["members"]} == {"ann": None, "bob": 1}


async def test_receipts_in_a_small_room_and_none_in_a_large_one(world):
    node = MemoryNode(world, "n1", receipts_max=3)
    ann, bob, cid = [await node.connect(u) for u in ("ann", "bob", "cid")]
    await books(node, ann, "bob", "cid")
    await send(ann, "books", "hi")
    await bob.call("read", {"room": "books", "seq": 1})
    receipt = {"room": "books", "user": "bob", "seq": 1}
    assert ann.events("receipt") == cid.events("receipt") == [receipt]
    assert (await ann.call("history", {"room": "books"}))["receipts"] == {"bob": 1}
    # The lobby has four members: above the limit, nothing is sent nor shown.
    await send(ann, "lobby", "hi all")
    await bob.call("read", {"room": "lobby", "seq": 1})
    assert [e["room"] for e in ann.events("receipt")] == ["books"]
    assert "receipts" not in await ann.call("history", {"room": "lobby"})
    members = await ann.call("members", {"room": "lobby"})
    assert all("read_seq" not in m for m in members["members"])


async def test_receipts_off_neither_sent_nor_seen(node, other):
    ann, bob, bob_phone = (
        await node.connect("ann"),
        await node.connect("bob"),
        await other.connect("bob"),
    )
    ack = await bob.call("settings", {"receipts": False})
    assert ack == {"ok": True, "settings": {"receipts": False}}
    await other.settle()
    assert bob_phone.events("settings") == [{"receipts": False}] and bob.events("settings") == []
    assert (await bob_phone.call("settings", {}))["settings"] == {"receipts": False}
    await ann.call("dm", {"to": "bob", "text": "hi"})
    await bob.call("read", {"room": "dm:ann:bob", "seq": 1})
    assert ann.events("receipt") == []  # bob sends none
    await bob.call("dm", {"to": "ann", "text": "hello"})
    await ann.call("read", {"room": "dm:ann:bob", "seq": 2})
    await other.settle()
    assert bob.events("receipt") == bob_phone.events("receipt") == []  # and sees none
    assert "receipts" not in await bob.call("history", {"room": "dm:ann:bob"})
    assert "receipts" not in await ann.call("history", {"room": "dm:ann:bob"})
    reconnected = await other.connect("bob")
    assert reconnected.events("session")[0]["settings"] == {"receipts": False}


@pytest.mark.parametrize("seq", [-1, "2", None, 1.5])
async def test_bad_read_payloads_change_nothing(node, world, seq):
    ann = await node.connect("ann")
    ack = await ann.call("read", {"room": "lobby", "seq": seq})
    assert ack["error"]["code"] == "invalid_request" and world.reads.positions_of == {}


def test_read_has_its_own_row_set_by_its_own_settings():
    env = {"CHAT_SHARDS": "s=redis://h:1", "CHAT_CLUSTER": "h:2", "CHAT_JWT_SECRET": "x" * 40}
    default = config.load(env)
    assert default.event_limit_table()["read"] == (20.0, 40)
    assert default.receipts_max_members == 20
    tuned = config.load({**env, "CHAT_READ_RATE": "5", "CHAT_READ_BURST": "7"})
    assert tuned.event_limit_table()["read"] == (5.0, 7)
    assert tuned.event_limit_table()["send"] == default.event_limit_table()["send"]


async def test_reads_spend_their_own_bucket_not_the_senders(world):
    node = MemoryNode(world, "n1", limits={"read": (0.001, 1)})
    ann = await node.connect("ann")
    await send(ann, "lobby", "one")
    assert (await ann.call("read", {"room": "lobby", "seq": 1}))["ok"]
    refused = await ann.call("read", {"room": "lobby", "seq": 1})
    assert refused["error"]["code"] == "rate_limited"
    await send(ann, "lobby", "two")  # sending is not held by reading
