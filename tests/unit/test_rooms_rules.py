"""Rooms (chat/core/rooms.py) over the fakes: who may read, join, leave and invite, and how a
membership change reaches every node (the user's sockets follow the room and hear ``joined`` or
``left`` with their ``last_seq``; the other members hear it once)."""

from __future__ import annotations

import pytest
from fakes import MemoryRooms
from fakes.failures import fail_once
from fakes.node import MemoryNode

from chat import channels
from chat.errors import ChatError

#: The counts of issue 16 on the joiner's own ``joined``: nothing read yet.
NOTHING_READ = {"read_seq": 0, "unread": 0, "mentions": 0}


async def make(node, owner, room_id, private=False):
    return await node.rooms.create(owner.conn.user, room_id, None, private)


async def test_a_created_room_has_its_creator_as_member_on_every_node(node, other, world):
    ann, ann_phone = await node.connect("ann"), await other.connect("ann")
    room = await make(node, ann, "books")
    assert room == {"id": "books", "name": "books", "private": False, "last_seq": 0,
                    "managed": False, "role": "owner"}  # fmt: skip
    await other.settle()
    assert await world.rooms.is_member("books", "ann")
    for client in (ann, ann_phone):
        assert client.events("joined") == [
            {"room": "books", "user": {"id": "ann", "name": "Ann"}, "last_seq": 0, **NOTHING_READ}
        ]
    sent = await ann_phone.call("send", {"room": "books", "text": "first"})
    assert ann.events("message") == [sent["message"]]  # the room is followed on both nodes


@pytest.mark.parametrize("room_id", ["lobby", "books"])
async def test_an_existing_room_cannot_be_created_again(node, room_id):
    ann = await node.connect("ann")
    await make(node, ann, "books")
    with pytest.raises(ChatError) as err:
        await make(node, ann, room_id, private=True)
    assert err.value.code == "room_exists"


@pytest.mark.parametrize(("room_id", "private"), [("Books", False), ("b" * 65, False), ("x", 1)])
async def test_room_ids_and_flags_are_checked(node, room_id, private):
    ann = await node.connect("ann")
    with pytest.raises(ChatError) as err:
        await node.rooms.create(ann.conn.user, room_id, None, private)
    assert err.value.code == "invalid_room"


async def test_joining_a_public_room_tells_the_members_once_and_the_joiner_its_pointer(
    node, other, world
):
    ann, bob = await node.connect("ann"), await other.connect("bob")
    await make(node, ann, "books")
    await ann.call("send", {"room": "books", "text": "before"})
    ack = await bob.call("join", {"room": "books"})
    assert ack["ok"] and ack["room"]["last_seq"] == 1 and ack["has_more"] is True
    await node.settle()
    assert ann.events("joined")[-1] == {"room": "books", "user": {"id": "bob", "name": "Bob"}}
    assert bob.events("joined") == [
        # What came before he joined is not unread to him: he starts at the newest message.
        {"room": "books", "user": {"id": "bob", "name": "Bob"}, "last_seq": 1, **NOTHING_READ,
         "read_seq": 1}
    ]  # fmt: skip
    assert await world.rooms.is_member("books", "bob")
    again = await bob.call("join", {"room": "books"})
    assert again["ok"] and len(ann.events("joined")) == 2  # no second notice


@pytest.mark.parametrize("event", ["join", "leave"])
async def test_a_membership_change_is_announced_even_if_the_socket_failed_to_follow(
    node, other, world, event
):
    """The membership is stored before the socket follows the room (or lets it go); a retry
    finds nothing left to change, so only the failed call can tell the others."""
    ann, bob = await node.connect("ann"), await other.connect("bob")
    await make(node, ann, "books")
    if event == "leave":
        await bob.call("join", {"room": "books"})
    step = "add_room" if event == "join" else "remove_room"
    failed = fail_once(other.connections, step)
    ack = await bob.call(event, {"room": "books"})
    assert failed and ack["error"]["code"] == "unavailable"
    await node.settle()
    await other.settle()
    notice = {"room": "books", "user": {"id": "bob", "name": "Bob"}}
    shown = "joined" if event == "join" else "left"
    assert ann.events(shown)[-1] == notice
    assert (await world.rooms.is_member("books", "bob")) is (event == "join")
    # His own socket heard the notice too, and follows the room (or no longer does):
    assert ("books" in bob.conn.rooms) is (event == "join")
    count = len(ann.events(shown))
    assert (await bob.call(event, {"room": "books"}))["ok"]
    await node.settle()
    assert len(ann.events(shown)) == count  # the retry changes nothing, tells nobody again


async def test_the_members_hear_of_a_join_whose_notice_to_the_joiner_failed(node, other):
    ann, bob = await node.connect("ann"), await other.connect("bob")
    await make(node, ann, "books")
    mine = channels.user_channel("bob")
    failed = fail_once(other.broker, "publish", lambda channel, _: channel == mine)
    assert (await bob.call("join", {"room": "books"}))["error"]["code"] == "unavailable"
    await node.settle()
    assert failed and ann.events("joined")[-1]["user"]["id"] == "bob"


async def test_a_private_room_is_joined_by_invitation_only(node, other, world):
    ann, bob = await node.connect("ann"), await other.connect("bob")
    await node.connect("cid")
    await make(node, ann, "secret", private=True)
    for event, payload in [
        ("join", {"room": "secret"}),
        ("history", {"room": "secret"}),
        ("members", {"room": "secret"}),
        ("invite", {"room": "secret", "user": "cid"}),
    ]:
        ack = await bob.call(event, payload)
        assert ack["error"]["code"] == "forbidden", event
    assert (await ann.call("invite", {"room": "secret", "user": "bob"}))["ok"]
    await other.settle()
    assert bob.events("joined")[-1]["room"] == "secret"  # the invited user's sockets follow
    assert (await bob.call("history", {"room": "secret"}))["ok"]
    ack = await ann.call("invite", {"room": "secret", "user": "nobody"})
    assert ack["error"]["code"] == "no_user"
    assert not await world.rooms.is_member("secret", "cid")


async def test_leaving_stops_delivery_and_tells_the_others(node, other, world):
    ann, bob = await node.connect("ann"), await other.connect("bob")
    await make(node, ann, "books")
    await bob.call("join", {"room": "books"})
    assert (await bob.call("leave", {"room": "books"}))["ok"]
    await node.settle()
    assert ann.events("left") == [{"room": "books", "user": {"id": "bob", "name": "Bob"}}]
    assert bob.events("left") == [{"room": "books", "user": {"id": "bob", "name": "Bob"}}]
    await ann.call("send", {"room": "books", "text": "gone?"})
    assert bob.events("message") == []
    assert not await world.rooms.is_member("books", "bob")
    assert (await bob.call("send", {"room": "books", "text": "x"}))["error"]["code"] == "forbidden"


@pytest.mark.parametrize("room", ["lobby", "dm:ann:bob"])
async def test_the_lobby_and_dms_cannot_be_left_nor_invited_to(node, room):
    ann = await node.connect("ann")
    assert (await ann.call("leave", {"room": room}))["error"]["code"] == "forbidden"
    ack = await ann.call("invite", {"room": room, "user": "cid"})
    assert ack["error"]["code"] == "forbidden"


async def test_a_dm_is_joined_by_its_two_users_only_and_only_when_both_exist(node):
    ann, cid = await node.connect("ann"), await node.connect("cid")
    joined = await ann.call("join", {"room": "dm:ann:bob"})
    assert joined["ok"] and joined["room"]["name"] == "Bob"  # as session calls it: the peer
    assert (await cid.call("join", {"room": "dm:ann:bob"}))["error"]["code"] == "forbidden"
    assert (await ann.call("join", {"room": "dm:ann:zed"}))["error"]["code"] == "no_room"
    assert (await ann.call("join", {"room": "dm:bob:ann"}))["error"]["code"] == "no_room"


async def test_typing_reaches_the_others_at_most_every_two_seconds(node, other, world):
    ann, bob = await node.connect("ann"), await other.connect("bob")
    assert (await ann.call("typing", {"room": "lobby"})) == {"ok": True, "sent": True}
    assert (await ann.call("typing", {"room": "lobby"})) == {"ok": True, "sent": False}
    assert bob.events("typing") == [{"room": "lobby", "user": {"id": "ann", "name": "Ann"}}]
    assert ann.events("typing") == []  # not to the typist's own sockets
    world.clock.advance(2.1)
    assert (await ann.call("typing", {"room": "lobby"}))["sent"] is True
    await ann.call("typing", {"room": "dm:ann:bob"})
    assert bob.events("typing")[-1]["room"] == "dm:ann:bob"


async def test_rooms_per_user_are_bounded_dms_aside(world):
    world.rooms = MemoryRooms(world.accounts, world.presence, rooms_per_user=2, clock=world.clock)
    node = MemoryNode(world)
    ann, bob, cid = await node.connect("ann"), await node.connect("bob"), await node.connect("cid")
    await make(node, bob, "r1")
    await make(node, bob, "r2")
    await make(node, cid, "r3")
    await ann.call("join", {"room": "r1"})
    await ann.call("dm", {"to": "bob", "text": "a DM does not count"})
    assert (await ann.call("join", {"room": "r2"}))["ok"]
    assert (await ann.call("join", {"room": "r3"}))["error"]["code"] == "too_many"
    with pytest.raises(ChatError) as err:
        await make(node, ann, "r4")
    assert err.value.code == "too_many"


async def test_the_listing_has_public_rooms_and_every_room_of_the_user(node, world):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    await make(node, bob, "open")
    await make(node, bob, "closed", private=True)
    await make(node, ann, "mine", private=True)
    await ann.call("dm", {"to": "bob", "text": "hi"})
    listed = {r["id"]: r for r in await node.rooms.visible(ann.conn.user)}
    assert set(listed) == {"lobby", "open", "mine", "dm:ann:bob"}
    assert listed["dm:ann:bob"] == {"id": "dm:ann:bob", "name": "Bob", "private": True,
                                    "last_seq": 1, "managed": False,
                                    "role": "member"}  # fmt: skip
    # A public room ann is not in: no role of hers (she may join; it is not hers yet).
    assert "role" not in listed["open"]
    assert listed["mine"]["role"] == "owner"
