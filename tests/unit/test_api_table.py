"""The Socket.IO event table (chat/core/api.py) over the fakes: every event checks the shape of
its payload first, answering ``{ok: false, error: {code, message}}`` and changing nothing."""

from __future__ import annotations

import copy

import pytest
from fakes.node import MemoryNode

#: Per event: payloads of the wrong shape (docs/protocol.md, "Events (client → server)").
BAD = {
    "send": [None, [], {}, {"room": "lobby"}, {"room": 1, "text": "x"}, {"room": "", "text": "x"},
             {"room": "lobby", "text": "x", "cid": ""}, {"room": "lobby", "text": "x" * 100_001}],
    "dm": [None, {"to": "bob"}, {"to": "bo b", "text": "x"}, {"to": 7, "text": "x"}],
    "join": [None, {}, {"room": "lobby", "since": -1}, {"room": "lobby", "since": "1"}],
    "leave": [None, {}, {"room": ["lobby"]}],
    "invite": [None, {"room": "r"}, {"room": "r", "user": "a:b"}],
    "history": [{}, {"room": "lobby", "limit": 0}, {"room": "lobby", "limit": 101},
                {"room": "lobby", "before": -1}],
    "sync": [{}, {"rooms": []}, {"rooms": {"lobby": -1}}],
    "online": [{}, {"users": "ann"}, {"users": ["a b"]}, {"users": ["u"] * 101}],
    "watch": [{}, {"users": [1]}],
    "unwatch": [{}, {"users": None}],
    "members": [{}, {"room": "lobby", "limit": 201}, {"room": "lobby", "offset": -1}],
    "rename": [{}, {"name": 5}, {"name": "x" * 1001}],
    "typing": [{}, {"room": None}],
    "read": [None, {}, {"room": "lobby"}, {"room": "lobby", "seq": -1},
             {"room": "lobby", "seq": "1"}, {"room": "lobby", "seq": 1.5}],
    "settings": [None, {"receipts": "no"}, {"receipts": 1}],
    "edit": [{}, {"room": "lobby", "id": "1.x"}, {"room": "lobby", "text": "x"},
             {"room": "lobby", "id": "", "text": "x"}, {"room": "lobby", "id": 1, "text": "x"},
             {"room": "lobby", "id": "1.x", "text": "x", "cid": ""}],
    "delete": [{}, {"room": "lobby"}, {"room": "lobby", "id": None}, {"id": "1.x"},
               {"room": "lobby", "id": "1.x", "cid": "c" * 65}],
    "react": [{}, {"room": "lobby", "id": "1.x", "emoji": "👍"},
              {"room": "lobby", "id": "1.x", "on": True}, {"room": "lobby", "id": "1.x",
              "emoji": "👍", "on": "yes"}, {"room": "lobby", "id": "1.x", "emoji": 1, "on": True},
              {"room": "lobby", "id": "1.x", "emoji": "x" * 65, "on": True}],
    "kick": [None, {}, {"room": "r"}, {"room": "r", "user": "a b"}, {"user": "bob"}],
    "ban": [{}, {"room": "r", "user": "bob", "duration_s": 0},
            {"room": "r", "user": "bob", "duration_s": "60"},
            {"room": "r", "user": "bob", "duration_s": 10**12}],
    "unban": [{}, {"room": "r", "user": 5}],
    "mute": [{}, {"room": "r", "user": "bob"}, {"room": "r", "user": "bob", "duration_s": -1},
             {"room": "r", "user": "bob", "duration_s": 1.5}],
    "unmute": [{}, {"room": "r", "user": None}],
    "role": [{}, {"room": "r", "user": "bob"}, {"room": "r", "user": "bob", "role": "owner"},
             {"room": "r", "user": "bob", "role": 1}],
    "transfer": [{}, {"room": "r"}, {"room": "r", "user": ["bob"]}],
    "room_settings": [{}, {"room": "r", "managed": "yes"}, {"room": "r", "member_limit": 0},
                      {"room": "r", "member_limit": "5"}],
    "block": [None, {}, {"user": "a b"}, {"user": 5}],
    "unblock": [None, {"user": ""}, {"user": ["bob"]}],
    "blocks": [None, [], "all"],
    "users": [None, {}, {"prefix": ""}, {"prefix": 1}, {"prefix": "a", "limit": 0},
              {"prefix": "a", "limit": 51}, {"prefix": "a", "offset": -1},
              {"prefix": "x" * 65}],
}  # fmt: skip


def test_every_event_of_the_table_has_bad_payloads_here(node):
    assert set(BAD) == set(node.events)


def _state(world) -> dict:
    """Everything the stores hold."""
    return copy.deepcopy(
        {
            "logs": world.history.logs,
            "state": (world.history.state, world.history.reactors),
            "rooms": (world.rooms.rooms, world.rooms.members, world.rooms.lists),
            "roles": (world.rooms.roles, world.moderation.bans, world.moderation.mutes),
            "users": world.accounts.records,
            "online": world.presence.online,
        }
    )


@pytest.mark.parametrize(("event", "payload"), [(e, p) for e, ps in BAD.items() for p in ps])
async def test_a_payload_of_the_wrong_shape_is_refused_and_changes_nothing(
    node, other, world, event, payload
):
    ann = await node.connect("ann")
    bob = await other.connect("bob")
    before, published = _state(world), len(world.hub.published)

    ack = await ann.call(event, payload)

    assert ack["ok"] is False
    assert ack["error"]["code"] == "invalid_request"
    assert isinstance(ack["error"]["message"], str) and ack["error"]["message"]
    assert _state(world) == before
    assert len(world.hub.published) == published
    assert [e for e, _ in bob.events()] == ["session"]


async def test_a_refused_event_names_the_offending_field(node):
    ann = await node.connect("ann")
    ack = await ann.call("dm", {"to": 7, "text": "x"})
    assert "$.to" in ack["error"]["message"]


@pytest.mark.parametrize(
    ("event", "payload", "code"),
    [
        ("send", {"room": "lobby", "text": "   "}, "invalid_text"),
        ("send", {"room": "nowhere", "text": "x"}, "no_room"),
        ("send", {"room": "Bad Id", "text": "x"}, "no_room"),
        ("dm", {"to": "nobody", "text": "x"}, "no_user"),
        ("join", {"room": "nowhere"}, "no_room"),
        ("leave", {"room": "lobby"}, "forbidden"),
        ("invite", {"room": "lobby", "user": "bob"}, "forbidden"),
        ("history", {"room": "nowhere"}, "no_room"),
        ("members", {"room": "nowhere"}, "no_room"),
        ("rename", {"name": "\u200b"}, "invalid_name"),
        ("typing", {"room": "nowhere"}, "no_room"),
        ("edit", {"room": "lobby", "id": "1.x", "text": " "}, "invalid_text"),
        ("edit", {"room": "nowhere", "id": "1.x", "text": "x"}, "no_room"),
        ("edit", {"room": "lobby", "id": "1.x", "text": "x"}, "no_message"),
        ("edit", {"room": "lobby", "id": "legacy-id", "text": "x"}, "no_message"),
        ("delete", {"room": "lobby", "id": "7.x"}, "no_message"),
        ("delete", {"room": "dm:ann:nobody", "id": "1.x"}, "no_room"),
        ("react", {"room": "lobby", "id": "1.x", "emoji": "x", "on": True}, "invalid_emoji"),
        ("react", {"room": "lobby", "id": "1.x", "emoji": "👍👍", "on": True}, "invalid_emoji"),
        ("react", {"room": "lobby", "id": "1.x", "emoji": "👍", "on": True}, "no_message"),
    ],
)
async def test_a_rule_broken_is_answered_with_its_code_and_changes_nothing(
    node, world, event, payload, code
):
    ann = await node.connect("ann")
    before, published = _state(world), len(world.hub.published)
    ack = await ann.call(event, payload)
    assert ack == {"ok": False, "error": {"code": code, "message": ack["error"]["message"]}}
    assert _state(world) == before and len(world.hub.published) == published


async def test_each_event_spends_its_own_row(world):
    node = MemoryNode(world, limits={"online": (0.001, 1)})
    ann = await node.connect("ann")
    assert (await ann.call("online", {"users": ["bob"]}))["ok"]
    refused = await ann.call("online", {"users": ["bob"]})
    assert refused["error"]["code"] == "rate_limited" and refused["error"]["retry_after"] > 0
    assert (await ann.call("members", {"room": "lobby"}))["ok"]  # another row
