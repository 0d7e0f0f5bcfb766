"""Edits, deletes and reactions (chat/core/changes.py) over the fakes: each change is an entry of
the room's stream with its own seq, delivered live like a message on every node; read paths
show the current state; every refusal is answered with its code and changes nothing."""

from __future__ import annotations

import copy

import pytest
from fakes.node import MemoryNode


def _state(world) -> dict:
    return copy.deepcopy(
        (world.history.logs, world.history.state, world.history.reactors, world.hub.published)
    )


async def sent(client, text="hello", room="lobby"):
    ack = await client.call("send", {"room": room, "text": text})
    return ack["message"]


async def test_an_edit_is_an_entry_of_its_own_delivered_live_everywhere(node, other):
    ann, ann_phone, bob = (
        await node.connect("ann"),
        await other.connect("ann"),
        await other.connect("bob"),
    )
    message = await sent(ann)
    ack = await ann.call("edit", {"room": "lobby", "id": message["id"], "text": " better "})
    edit = ack["message"]
    assert edit["kind"] == "edit" and edit["seq"] == 2 and edit["text"] == "better"
    assert (edit["target"], edit["target_seq"]) == (message["id"], 1)
    assert edit["id"].startswith("2.") and edit["from"] == {"id": "ann", "name": "Ann"}
    for client in (ann, ann_phone, bob):
        assert client.events("message") == [message, edit]
    page = await bob.call("history", {"room": "lobby"})
    first = page["messages"][0]
    assert (first["text"], first["edited_ts"], first["changed_seq"]) == ("better", edit["ts"], 2)
    assert page["messages"][1] == edit


async def test_a_deleted_message_never_shows_its_text_again_not_even_in_an_earlier_edit(node):
    ann = await node.connect("ann")
    message = await sent(ann, "secret plan")
    await ann.call("edit", {"room": "lobby", "id": message["id"], "text": "still secret"})
    ack = await ann.call("delete", {"room": "lobby", "id": message["id"]})
    tombstone = ack["message"]
    assert tombstone["kind"] == "delete" and "text" not in tombstone and tombstone["seq"] == 3
    for answer in (
        (await ann.call("history", {"room": "lobby"}))["messages"],
        (await ann.call("sync", {"rooms": {"lobby": 0}}))["rooms"]["lobby"]["messages"],
        (await ann.call("join", {"room": "lobby", "since": 0}))["missed"],
    ):
        assert [m["seq"] for m in answer] == [1, 2, 3]
        assert answer[0]["deleted"] is True and "text" not in answer[0]
        assert "text" not in answer[1] and answer[1]["kind"] == "edit"
        assert all("secret" not in str(m) for m in answer)


async def test_reactions_are_counted_with_the_callers_own(node, other):
    ann, bob, cid = await node.connect("ann"), await other.connect("bob"), await node.connect("cid")
    message = await sent(ann)
    mid = message["id"]
    for client, emoji in ((bob, "👍"), (cid, "👍"), (cid, "🎉"), (ann, "👩‍💻")):
        ack = await client.call("react", {"room": "lobby", "id": mid, "emoji": emoji, "on": True})
        assert ack["message"]["kind"] == "react" and ack["message"]["on"] is True
        assert ack["message"]["emoji"] == emoji and "text" not in ack["message"]
    again = await bob.call("react", {"room": "lobby", "id": mid, "emoji": "👍", "on": True})
    assert again == {"ok": True, "message": None}  # already on: nothing stored or sent
    off = await cid.call("react", {"room": "lobby", "id": mid, "emoji": "🎉", "on": False})
    assert off["message"]["on"] is False and off["message"]["seq"] == 6
    not_on = await bob.call("react", {"room": "lobby", "id": mid, "emoji": "🎉", "on": False})
    assert not_on["message"] is None
    shown = (await cid.call("history", {"room": "lobby", "limit": 1, "before": 2}))["messages"][0]
    assert shown["reactions"] == {"👍": 2, "👩‍💻": 1} and shown["my_reactions"] == ["👍"]
    mine = (await ann.call("history", {"room": "lobby", "before": 2}))["messages"][0]
    assert mine["my_reactions"] == ["👩‍💻"] and mine["text"] == "hello"
    assert [m["seq"] for m in bob.events("message")] == [1, 2, 3, 4, 5, 6]


async def test_only_the_author_edits_or_deletes_and_nothing_changes_otherwise(node, world):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    mid = (await sent(ann))["id"]
    before = _state(world)
    for event, payload in (
        ("edit", {"room": "lobby", "id": mid, "text": "mine now"}),
        ("delete", {"room": "lobby", "id": mid}),
    ):
        ack = await bob.call(event, payload)
        assert ack["error"]["code"] == "forbidden", event
    assert _state(world) == before


async def test_a_deleted_message_refuses_every_change(node, world):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    mid = (await sent(ann))["id"]
    await bob.call("react", {"room": "lobby", "id": mid, "emoji": "👍", "on": True})
    await ann.call("delete", {"room": "lobby", "id": mid})
    before = _state(world)
    for client, event, payload in (
        (ann, "edit", {"room": "lobby", "id": mid, "text": "back"}),
        (ann, "delete", {"room": "lobby", "id": mid}),
        (bob, "react", {"room": "lobby", "id": mid, "emoji": "👍", "on": False}),
        (bob, "react", {"room": "lobby", "id": mid, "emoji": "🎉", "on": True}),
    ):
        ack = await client.call(event, payload)
        assert ack["error"]["code"] == "message_deleted", (event, payload)
    assert _state(world) == before
    shown = (await bob.call("history", {"room": "lobby"}))["messages"][0]
    assert shown["deleted"] is True and "reactions" not in shown and "my_reactions" not in shown


async def test_ids_that_name_no_message_are_no_message(node, world):
    ann = await node.connect("ann")
    message = await sent(ann)
    edit = (await ann.call("edit", {"room": "lobby", "id": message["id"], "text": "x"}))["message"]
    before = _state(world)
    for mid in (edit["id"], "1.forged", "99." + message["id"].split(".")[1], "0.x", "01.x"):
        ack = await ann.call("edit", {"room": "lobby", "id": mid, "text": "y"})
        assert ack["error"]["code"] == "no_message", mid
        ack = await ann.call("react", {"room": "lobby", "id": mid, "emoji": "👍", "on": True})
        assert ack["error"]["code"] == "no_message", mid
    assert _state(world) == before


async def test_a_message_of_another_room_is_no_message_here(node, world):
    ann = await node.connect("ann")
    await node.rooms.create(ann.conn.user, "books", None, False)
    elsewhere = await sent(ann, room="books")
    ack = await ann.call("delete", {"room": "lobby", "id": elsewhere["id"]})
    assert ack["error"]["code"] == "no_message"


async def test_the_edit_window_closes(world):
    node = MemoryNode(world, edit_window_s=60)
    ann = await node.connect("ann")
    mid = (await sent(ann))["id"]
    untouched = (await sent(ann, "never changed"))["id"]
    world.clock.advance(59)
    assert (await ann.call("edit", {"room": "lobby", "id": mid, "text": "in time"}))["ok"]
    world.clock.advance(2)
    before = _state(world)
    for target in (mid, untouched):
        ack = await ann.call("edit", {"room": "lobby", "id": target, "text": "too late"})
        assert ack["error"]["code"] == "edit_window_closed" and _state(world) == before
    assert (await ann.call("delete", {"room": "lobby", "id": mid}))["ok"]  # deletes: always


async def test_no_window_when_it_is_zero(world):
    node = MemoryNode(world, edit_window_s=0)
    ann = await node.connect("ann")
    mid = (await sent(ann))["id"]
    world.clock.advance(10 * 365 * 86400)
    assert (await ann.call("edit", {"room": "lobby", "id": mid, "text": "years later"}))["ok"]


async def test_reactions_are_bounded_per_message_and_per_user(node, world):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    mid = (await sent(ann))["id"]
    faces = [chr(0x1F600 + i) for i in range(21)]
    for face in faces[:10]:
        assert (await ann.call("react", {"room": "lobby", "id": mid, "emoji": face, "on": True}))[
            "ok"
        ]
    before = _state(world)
    ack = await ann.call("react", {"room": "lobby", "id": mid, "emoji": faces[10], "on": True})
    assert ack["error"]["code"] == "too_many_reactions" and _state(world) == before
    for face in faces[10:20]:
        assert (await bob.call("react", {"room": "lobby", "id": mid, "emoji": face, "on": True}))[
            "ok"
        ]
    dan = await node.connect("dan")
    before = _state(world)
    ack = await dan.call("react", {"room": "lobby", "id": mid, "emoji": faces[20], "on": True})
    assert ack["error"]["code"] == "too_many_reactions" and _state(world) == before
    # One of the 20 already there is still open to anyone.
    assert (await dan.call("react", {"room": "lobby", "id": mid, "emoji": faces[0], "on": True}))[
        "ok"
    ]


async def test_a_retry_with_the_same_cid_returns_the_first_entry(node, world):
    ann = await node.connect("ann")
    mid = (await sent(ann))["id"]
    payload = {"room": "lobby", "id": mid, "text": "v2", "cid": "e1"}
    first = await ann.call("edit", payload)
    again = await ann.call("edit", {**payload, "text": "v3"})
    assert again["message"] == first["message"] and len(world.history.logs["lobby"]) == 2
    react = {"room": "lobby", "id": mid, "emoji": "👍", "on": True, "cid": "e1"}
    reacted = await ann.call("react", react)  # the same cid for another kind: its own request
    assert reacted["message"]["kind"] == "react"
    assert (await ann.call("react", react))["message"] == reacted["message"]
    assert [m["seq"] for m in ann.events("message")] == [1, 2, 3]  # republished copies dropped


async def test_members_only_and_dms_reach_both_users(node, other, world):
    ann, bob, cid = await node.connect("ann"), await other.connect("bob"), await node.connect("cid")
    await node.rooms.create(ann.conn.user, "secret", None, True)
    hidden = await sent(ann, room="secret")
    before = _state(world)
    ack = await cid.call("react", {"room": "secret", "id": hidden["id"], "emoji": "👍", "on": True})
    assert ack["error"]["code"] == "forbidden" and _state(world) == before
    dm = (await ann.call("dm", {"to": "bob", "text": "psst"}))["message"]
    ack = await bob.call("react", {"room": dm["room"], "id": dm["id"], "emoji": "👀", "on": True})
    assert ann.events("message")[-1] == ack["message"] == bob.events("message")[-1]
    refused = await cid.call("delete", {"room": dm["room"], "id": dm["id"]})
    assert refused["error"]["code"] == "forbidden"


async def test_changes_spend_the_send_bucket(world):
    node = MemoryNode(world, limits={"send": (0.001, 2)})
    ann = await node.connect("ann")
    mid = (await sent(ann))["id"]
    assert (await ann.call("react", {"room": "lobby", "id": mid, "emoji": "👍", "on": True}))["ok"]
    for event, payload in (
        ("edit", {"room": "lobby", "id": mid, "text": "x"}),
        ("delete", {"room": "lobby", "id": mid}),
        ("react", {"room": "lobby", "id": mid, "emoji": "👍", "on": False}),
    ):
        assert (await ann.call(event, payload))["error"]["code"] == "rate_limited"


@pytest.mark.parametrize("emoji", ["👍", "👍🏽", "❤️", "👩‍💻", "🇫🇷", "#️⃣"])
async def test_one_emoji_of_any_shape_is_accepted(node, emoji):
    ann = await node.connect("ann")
    mid = (await sent(ann))["id"]
    ack = await ann.call("react", {"room": "lobby", "id": mid, "emoji": emoji, "on": True})
    assert ack["message"]["emoji"] == emoji


@pytest.mark.parametrize("emoji", ["", "a", ":+1:", "👍👍", "👍 ", "1", "<b>"])
async def test_anything_else_is_invalid_emoji(node, world, emoji):
    ann = await node.connect("ann")
    mid = (await sent(ann))["id"]
    before = _state(world)
    ack = await ann.call("react", {"room": "lobby", "id": mid, "emoji": emoji, "on": True})
    assert ack["error"]["code"] == "invalid_emoji" and _state(world) == before
