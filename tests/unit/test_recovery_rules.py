"""Reading history (chat/core/recovery.py) over the fakes: pages in both directions, what a
joining or reconnecting socket missed up to its pointer, and per-room errors in ``sync``."""

from __future__ import annotations

from chat.core import recovery


async def fill(client, count, room="lobby"):
    for i in range(1, count + 1):
        await client.call("send", {"room": room, "text": f"m{i}"})


def seqs(answer):
    return [m["seq"] for m in answer["messages"]]


async def test_history_pages_newest_first_then_backwards_and_forwards(node):
    ann = await node.connect("ann")
    await fill(ann, 7)
    newest = await ann.call("history", {"room": "lobby", "limit": 3})
    assert (seqs(newest), newest["has_more"]) == ([5, 6, 7], True)
    older = await ann.call("history", {"room": "lobby", "before": 5, "limit": 3})
    assert (seqs(older), older["has_more"]) == ([2, 3, 4], True)
    oldest = await ann.call("history", {"room": "lobby", "before": 2, "limit": 3})
    assert (seqs(oldest), oldest["has_more"]) == ([1], False)
    later = await ann.call("history", {"room": "lobby", "after": 4, "limit": 2})
    assert (seqs(later), later["has_more"]) == ([5, 6], True)
    window = await ann.call("history", {"room": "lobby", "after": 2, "before": 5})
    assert (seqs(window), window["has_more"]) == ([3, 4], False)
    assert newest["messages"][0]["text"] == "m5" and newest["messages"][0]["from"]["id"] == "ann"


async def test_join_with_since_answers_what_was_missed_up_to_the_pointer(node, other):
    ann, bob = await node.connect("ann"), await other.connect("bob")
    await node.rooms.create(ann.conn.user, "books", None, False)
    await fill(ann, 4, "books")
    ack = await bob.call("join", {"room": "books", "since": 1})
    assert ack["room"]["last_seq"] == 4
    assert (seqs({"messages": ack["missed"]}), ack["has_more"]) == ([2, 3, 4], False)
    nothing = await bob.call("join", {"room": "books", "since": 4})
    assert nothing["missed"] == [] and nothing["has_more"] is False


async def test_missed_is_at_most_a_hundred_and_says_there_is_more(node):
    ann = await node.connect("ann")
    await fill(ann, 103)
    ack = await ann.call("join", {"room": "lobby", "since": 0})
    assert len(ack["missed"]) == 100 and ack["has_more"] is True
    assert ack["missed"][0]["seq"] == 1


async def test_sync_answers_each_room_or_its_error(node, other):
    ann, bob = await node.connect("ann"), await other.connect("bob")
    await node.rooms.create(ann.conn.user, "secret", None, True)
    await fill(ann, 3)
    await fill(ann, 2, "secret")
    ack = await bob.call("sync", {"rooms": {"lobby": 1, "secret": 0, "nowhere": 0}})
    rooms = ack["rooms"]
    assert (seqs(rooms["lobby"]), rooms["lobby"]["has_more"]) == ([2, 3], False)
    assert rooms["secret"]["error"]["code"] == "forbidden" and rooms["secret"]["messages"] == []
    assert rooms["nowhere"]["error"]["code"] == "no_room"
    mine = await ann.call("sync", {"rooms": {"secret": 0}})
    assert seqs(mine["rooms"]["secret"]) == [1, 2]


async def test_a_reconnecting_client_sees_every_message_once(node, other):
    """The session's ``last_seq`` and the live events split the stream with no gap and no
    duplicate: what lies up to the pointer comes from sync, what follows live."""
    ann, bob = await node.connect("ann"), await other.connect("bob")
    await fill(ann, 2)
    await bob.close()
    await fill(ann, 3)  # missed while away
    bob = await other.connect("bob")
    pointer = bob.events("session")[0]["rooms"][0]["last_seq"]
    synced = await bob.call("sync", {"rooms": {"lobby": 2}})
    await fill(ann, 1)
    got = seqs(synced["rooms"]["lobby"]) + [m["seq"] for m in bob.events("message")]
    assert pointer == 5 and got == [3, 4, 5, 6]


async def test_a_sync_of_many_rooms_shares_its_budget_among_them(node, monkeypatch):
    """One answer is bounded in all (``SYNC_MAX``, 2,000: 500 rooms of 100 messages were
    tens of MB for one token); each room gets an equal share and ``has_more``."""
    monkeypatch.setattr(recovery, "SYNC_MAX", 4)
    ann = await node.connect("ann")
    for room in ("books", "films"):
        await node.rooms.create(ann.conn.user, room, None, False)
    for room in ("lobby", "books", "films"):
        await fill(ann, 3, room)
    ack = await ann.call("sync", {"rooms": {"lobby": 0, "books": 0, "films": 1}})
    assert {r: (seqs(a), a["has_more"]) for r, a in ack["rooms"].items()} == {
        "lobby": ([1], True), "books": ([1], True), "films": ([2], True),
    }  # fmt: skip
    again = await ann.call("sync", {"rooms": {"books": 1}})  # one room: its full page
    assert (seqs(again["rooms"]["books"]), again["rooms"]["books"]["has_more"]) == ([2, 3], False)
