"""Sending (chat/core/messaging.py) over the fakes: stored first with the room's next seq, then
delivered once to every socket of the room on every node; a retry with the same ``cid`` is the
first message; DMs reach both users' devices and are listed for both."""

from __future__ import annotations

from fakes.node import MemoryNode


async def test_a_message_is_stored_then_delivered_to_the_room_on_every_node(node, other, world):
    ann, bob = await node.connect("ann"), await other.connect("bob")
    ack = await ann.call("send", {"room": "lobby", "text": "  hello  "})
    message = ack["message"]
    assert (message["room"], message["seq"], message["text"]) == ("lobby", 1, "hello")
    assert message["from"] == {"id": "ann", "name": "Ann"}
    assert [m.text for m in world.history.logs["lobby"]] == ["hello"]
    assert bob.events("message") == [message]
    assert ann.events("message") == [message]  # the sender's sockets too (other tabs)


async def test_seqs_are_gap_free_per_room(node):
    ann = await node.connect("ann")
    seqs = [(await ann.call("send", {"room": "lobby", "text": str(i)}))["message"]["seq"]
            for i in range(5)]  # fmt: skip
    assert seqs == [1, 2, 3, 4, 5]


async def test_a_retry_with_the_same_cid_returns_the_first_message_stored_once(node, world):
    ann = await node.connect("ann")
    first = await ann.call("send", {"room": "lobby", "text": "once", "cid": "c1"})
    again = await ann.call("send", {"room": "lobby", "text": "once", "cid": "c1"})
    assert again["message"] == first["message"]
    assert len(world.history.logs["lobby"]) == 1
    assert ann.events("message") == [first["message"]]  # the republished copy is dropped
    other_cid = await ann.call("send", {"room": "lobby", "text": "once", "cid": "c2"})
    assert other_cid["message"]["seq"] == 2


async def test_only_members_may_send_to_a_room(node, world):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    await node.rooms.create(ann.conn.user, "secret", "Secret", True)
    ack = await bob.call("send", {"room": "secret", "text": "hi"})
    assert ack["error"]["code"] == "forbidden"
    assert "secret" not in world.history.logs


async def test_a_dm_reaches_both_users_devices_and_is_listed_for_both(node, other, world):
    ann, ann_phone = await node.connect("ann"), await other.connect("ann")
    bob, cid = await other.connect("bob"), await other.connect("cid")
    ack = await ann.call("dm", {"to": "bob", "text": "psst"})
    message = ack["message"]
    assert message["room"] == "dm:ann:bob" and message["seq"] == 1
    for client in (ann, ann_phone, bob):
        assert client.events("message") == [message]
    assert cid.events("message") == []
    assert "dm:ann:bob" in await world.rooms.user_rooms("ann")
    assert "dm:ann:bob" in await world.rooms.user_rooms("bob")
    answer = await bob.call("send", {"room": "dm:ann:bob", "text": "yes"})
    assert answer["message"]["seq"] == 2 and ann.events("message")[-1] == answer["message"]


async def test_a_note_to_oneself_is_delivered_once(node):
    ann = await node.connect("ann")
    ack = await ann.call("dm", {"to": "ann", "text": "remember"})
    assert ack["message"]["room"] == "dm:ann:ann"
    assert ann.events("message") == [ack["message"]]


async def test_a_third_user_cannot_write_to_a_dm(node):
    cid = await node.connect("cid")
    ack = await cid.call("send", {"room": "dm:ann:bob", "text": "hi"})
    assert ack["error"]["code"] == "forbidden"


async def test_text_rules_apply_before_anything_is_stored(node, world):
    ann = await node.connect("ann")
    for text in ("", "   ", "\u200b", "x" * 2001):
        ack = await ann.call("send", {"room": "lobby", "text": text})
        assert ack["error"]["code"] == "invalid_text", text
    assert world.history.logs == {}


async def test_a_failed_publish_still_acks_the_stored_message(world):
    """Stored, so not lost: receivers fill the gap from history, clients by sync."""
    node = MemoryNode(world)
    ann = await node.connect("ann")

    async def failing(channels, payload):
        return [RuntimeError("shard down") for _ in channels]

    node.broker.publish_each = failing  # type: ignore[method-assign]
    ack = await ann.call("send", {"room": "lobby", "text": "kept"})
    assert ack["ok"] and [m.text for m in world.history.logs["lobby"]] == ["kept"]


async def test_a_send_while_the_shard_is_down_is_acked_and_arrives_once_it_is_back(
    node, other, world
):
    """The message is stored before it is published: a publish that fails costs the live
    copy only, which every receiving node reads from history once its shard is back."""
    ann, bob = await node.connect("ann"), await other.connect("bob")
    first = (await ann.call("dm", {"to": "bob", "text": "one"}))["message"]
    world.hub.down = True
    sent = [await ann.call("dm", {"to": "bob", "text": t}) for t in ("two", "three")]
    lobby = await ann.call("send", {"room": "lobby", "text": "four"})
    assert all(ack["ok"] for ack in [*sent, lobby])
    assert bob.events("message") == [first]  # nothing live while the shard is down
    await world.hub.restore()
    await other.settle()
    expected = {"dm:ann:bob": [first, *(ack["message"] for ack in sent)],
                "lobby": [lobby["message"]]}  # fmt: skip
    for client in (ann, bob):  # in order per room, once
        got = client.events("message")
        assert {room: [m for m in got if m["room"] == room] for room in expected} == expected
