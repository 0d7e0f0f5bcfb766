"""Roles, managed rooms and moderation (chat/core/roles.py, chat/core/moderation.py) over the
fakes: each action is an entry of the room's stream delivered live on every node; a kicked or
banned member's sockets leave the room everywhere; every refusal is answered with its code and
changes nothing."""

from __future__ import annotations

import asyncio
import copy

import pytest
from fakes.node import MemoryNode, World

from chat.errors import ChatError, unavailable


def _state(world: World) -> object:
    return copy.deepcopy(
        (
            world.history.logs, world.rooms.rooms, world.rooms.members, world.rooms.lists,
            world.rooms.roles, world.moderation.bans, world.moderation.mutes,
            world.hub.published,
        )
    )  # fmt: skip


async def ok(client, event: str, payload: dict) -> dict:
    ack = await client.call(event, payload)
    assert ack["ok"] is True, ack
    return ack


async def refused(client, event: str, payload: dict, code: str) -> None:
    world = client.node.world
    before = _state(world)
    ack = await client.call(event, payload)
    assert ack["ok"] is False and ack["error"]["code"] == code, ack
    assert _state(world) == before, f"{event} {payload} changed something"


async def room_of(node: MemoryNode, owner, room="club", *members, **kw) -> str:
    private = kw.pop("private", False)
    await node.rooms.create(owner.conn.user, room, None, private, **kw)
    await node.settle()
    for member in members:
        if private:
            await ok(owner, "invite", {"room": room, "user": member.conn.user.id})
        else:
            await ok(member, "join", {"room": room})
    return room


async def test_a_kick_is_an_entry_everyone_sees_and_the_member_leaves_on_every_node(node, other):
    ann, bob, bob_phone, cid = (
        await node.connect("ann"), await node.connect("bob"), await other.connect("bob"),
        await other.connect("cid"),
    )  # fmt: skip
    room = await room_of(node, ann, "club", bob, cid)
    for client in (ann, bob, bob_phone, cid):
        client.clear()

    entry = (await ok(ann, "kick", {"room": room, "user": "bob"}))["message"]

    assert entry["kind"] == "moderation" and entry["action"] == "kick"
    assert entry["user"] == {"id": "bob", "name": "Bob"} and entry["from"]["id"] == "ann"
    assert entry["id"].startswith(f"{entry['seq']}.") and "until" not in entry
    for client in (ann, cid):
        assert client.events("message") == [entry]
        assert client.events("left") == [{"room": room, "user": {"id": "bob", "name": "Bob"}}]
    for device in (bob, bob_phone):
        assert device.events("left") == [{"room": room, "user": {"id": "bob", "name": "Bob"}}]
        assert room not in device.conn.rooms
    assert not await node.world.rooms.is_member(room, "bob")
    await ok(ann, "send", {"room": room, "text": "after"})
    assert [m["text"] for m in bob.events("message") if "text" in m] == []
    assert (await bob.call("join", {"room": room}))["ok"] is True  # a kick: may rejoin
    page = await cid.call("history", {"room": room})
    assert entry in page["messages"]


async def test_a_ban_keeps_the_user_out_until_unbanned_or_expired(node, world):
    ann, bob, cid = await node.connect("ann"), await node.connect("bob"), await node.connect("cid")
    room = await room_of(node, ann, "club", bob)
    ban = (await ok(ann, "ban", {"room": room, "user": "bob"}))["message"]
    assert ban["action"] == "ban" and "until" not in ban
    assert bob.events("left")[-1]["room"] == room
    await refused(bob, "join", {"room": room}, "banned")
    await ok(cid, "join", {"room": room})
    await ok(ann, "role", {"room": room, "user": "cid", "role": "admin"})
    await refused(ann, "invite", {"room": room, "user": "bob"}, "banned")
    unban = (await ok(cid, "unban", {"room": room, "user": "bob"}))["message"]
    assert unban["action"] == "unban" and unban["seq"] == ban["seq"] + 2
    assert (await ann.call("unban", {"room": room, "user": "bob"}))["message"] is None
    await ok(bob, "join", {"room": room})

    timed = (await ok(ann, "ban", {"room": room, "user": "bob", "duration_s": 60}))["message"]
    assert timed["until"] == timed["ts"] + 60_000
    await refused(bob, "join", {"room": room}, "banned")
    world.clock.advance(61)
    await ok(bob, "join", {"room": room})


async def test_a_ban_needs_no_membership_and_a_banned_user_cannot_be_invited_to_a_private_room(
    node,
):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    room = await room_of(node, ann, "den", private=True)
    await ok(ann, "ban", {"room": room, "user": "bob"})
    assert bob.events("left") == []  # not a member: nothing to leave
    await refused(ann, "invite", {"room": room, "user": "bob"}, "banned")
    await refused(bob, "join", {"room": room}, "banned")  # not the private room's forbidden
    cid = await node.connect("cid")
    await refused(cid, "join", {"room": room}, "forbidden")  # never invited, not banned
    await refused(ann, "ban", {"room": room, "user": "nobody"}, "no_user")


async def test_a_mute_stops_send_edit_and_react_until_it_expires(node, other, world):
    ann, bob = await node.connect("ann"), await other.connect("bob")
    room = await room_of(node, ann, "club", bob)
    said = (await ok(bob, "send", {"room": room, "text": "before"}))["message"]
    mute = (await ok(ann, "mute", {"room": room, "user": "bob", "duration_s": 30}))["message"]
    assert mute["until"] == mute["ts"] + 30_000 and bob.events("message")[-1] == mute
    await refused(bob, "send", {"room": room, "text": "x"}, "muted")
    await refused(bob, "edit", {"room": room, "id": said["id"], "text": "y"}, "muted")
    react = {"room": room, "id": said["id"], "emoji": "👍", "on": True}
    await refused(bob, "react", react, "muted")
    assert (await bob.call("send", {"room": "lobby", "text": "elsewhere"}))["ok"] is True
    world.clock.advance(31)
    await ok(bob, "send", {"room": room, "text": "free again"})
    await ok(ann, "mute", {"room": room, "user": "bob", "duration_s": 30})
    await ok(ann, "unmute", {"room": room, "user": "bob"})
    await ok(bob, "react", react)
    assert (await ann.call("unmute", {"room": room, "user": "bob"}))["message"] is None


async def test_who_may_act_on_whom(node):
    ann, bob, cid, dan = [await node.connect(u) for u in ("ann", "bob", "cid", "dan")]
    room = await room_of(node, ann, "club", bob, cid, dan)
    await ok(ann, "role", {"room": room, "user": "bob", "role": "admin"})
    await ok(ann, "role", {"room": room, "user": "cid", "role": "admin"})
    for action, extra in (("kick", {}), ("mute", {"duration_s": 5}), ("ban", {})):
        # A member acts on nobody; an admin not on the owner nor on another admin; nobody on
        # themselves.
        await refused(dan, action, {"room": room, "user": "bob", **extra}, "forbidden")
        await refused(bob, action, {"room": room, "user": "ann", **extra}, "forbidden")
        await refused(bob, action, {"room": room, "user": "cid", **extra}, "forbidden")
        await refused(bob, action, {"room": room, "user": "bob", **extra}, "forbidden")
        await refused(ann, action, {"room": room, "user": "ann", **extra}, "forbidden")
    await refused(bob, "kick", {"room": room, "user": "nobody"}, "no_user")
    await refused(bob, "kick", {"room": "lobby", "user": "dan"}, "forbidden")
    await refused(bob, "kick", {"room": "nowhere", "user": "dan"}, "no_room")
    await ok(bob, "mute", {"room": room, "user": "dan", "duration_s": 5})
    await ok(ann, "kick", {"room": room, "user": "cid"})  # the owner acts on an admin
    assert await node.roles.role("cid", node.world.rooms.rooms[room]) == "member"  # role gone
    await refused(bob, "kick", {"room": room, "user": "cid"}, "not_member")


async def test_roles_change_only_by_the_owner_and_nobody_escalates(node):
    ann, bob, cid = [await node.connect(u) for u in ("ann", "bob", "cid")]
    room = await room_of(node, ann, "club", bob, cid)
    await refused(bob, "role", {"room": room, "user": "bob", "role": "admin"}, "forbidden")
    await refused(bob, "transfer", {"room": room, "user": "bob"}, "forbidden")
    await ok(ann, "role", {"room": room, "user": "bob", "role": "admin"})
    await refused(bob, "role", {"room": room, "user": "cid", "role": "admin"}, "forbidden")
    await refused(bob, "role", {"room": room, "user": "ann", "role": "member"}, "forbidden")
    await refused(ann, "role", {"room": room, "user": "ann", "role": "member"}, "forbidden")
    await refused(ann, "role", {"room": room, "user": "dan", "role": "admin"}, "not_member")
    same = await ann.call("role", {"room": room, "user": "bob", "role": "admin"})
    assert same == {"ok": True, "message": None}
    entry = (await ok(ann, "role", {"room": room, "user": "bob", "role": "member"}))["message"]
    assert (entry["action"], entry["role"]) == ("role", "member")
    members = (await cid.call("members", {"room": room}))["members"]
    assert {m["id"]: m["role"] for m in members} == {
        "ann": "owner",
        "bob": "member",
        "cid": "member",
    }


async def test_the_owner_transfers_and_the_last_owner_cannot_leave(node):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    room = await room_of(node, ann, "club", bob)
    await refused(ann, "leave", {"room": room}, "owner_must_transfer")
    await refused(ann, "transfer", {"room": room, "user": "cid"}, "not_member")
    entry = (await ok(ann, "transfer", {"room": room, "user": "bob"}))["message"]
    assert (entry["action"], entry["user"]["id"]) == ("transfer", "bob")
    joined = (await ann.call("join", {"room": room}))["room"]
    assert joined["role"] == "admin"
    listed = {r["id"]: r for r in await node.rooms.visible(bob.conn.user)}
    assert listed[room]["role"] == "owner"
    await refused(bob, "leave", {"room": room}, "owner_must_transfer")
    await ok(ann, "leave", {"room": room})  # an admin may leave, and loses the role
    await ok(ann, "join", {"room": room})
    assert (await ann.call("join", {"room": room}))["room"]["role"] == "member"


async def test_a_room_from_before_roles_has_its_creator_as_owner(node, world):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    room = await room_of(node, ann, "old", bob)
    world.rooms.roles.pop(room)  # as a room created before this release
    assert (await ann.call("join", {"room": room}))["room"]["role"] == "owner"
    await refused(ann, "leave", {"room": room}, "owner_must_transfer")
    await ok(ann, "transfer", {"room": room, "user": "bob"})
    assert world.rooms.roles[room] == {"ann": "admin", "bob": "owner"}


async def test_admins_delete_any_message_and_the_entry_says_so(node, other):
    ann, bob, cid = await node.connect("ann"), await other.connect("bob"), await node.connect("cid")
    room = await room_of(node, ann, "club", bob, cid)
    said = (await ok(cid, "send", {"room": room, "text": "spam"}))["message"]
    await refused(bob, "delete", {"room": room, "id": said["id"]}, "forbidden")
    await ok(ann, "role", {"room": room, "user": "bob", "role": "admin"})
    entry = (await ok(bob, "delete", {"room": room, "id": said["id"]}))["message"]
    assert entry["kind"] == "delete" and entry["by_moderator"] is True
    assert cid.events("message")[-1] == entry
    own = (await ok(bob, "send", {"room": room, "text": "mine"}))["message"]
    assert (
        "by_moderator" not in (await ok(bob, "delete", {"room": room, "id": own["id"]}))["message"]
    )


async def test_a_service_admin_acts_as_owner_of_every_room(node, world):
    ann, bob, cid = [await node.connect(u) for u in ("ann", "bob", "cid")]
    room = await room_of(node, ann, "den", bob, private=True, managed=True)
    world.moderation.admins.add("cid")  # a bot with an admin-scoped service token
    said = (await ok(bob, "send", {"room": room, "text": "spam"}))["message"]
    assert (await ok(cid, "delete", {"room": room, "id": said["id"]}))["message"]["by_moderator"]
    await ok(cid, "invite", {"room": room, "user": "dan"})
    await ok(cid, "ban", {"room": room, "user": "bob"})
    await refused(cid, "kick", {"room": room, "user": "ann"}, "forbidden")  # never the owner
    said = (await ok(ann, "send", {"room": "lobby", "text": "lobby spam"}))["message"]
    await refused(bob, "delete", {"room": "lobby", "id": said["id"]}, "forbidden")
    lobby = await ok(cid, "delete", {"room": "lobby", "id": said["id"]})  # the lobby too
    assert lobby["message"]["by_moderator"] is True
    session = cid.events("session")[0]
    assert {r["id"]: r["role"] for r in session["rooms"]}["lobby"] == "member"  # not yet admin
    again = await node.connect("cid")
    assert {r["id"]: r["role"] for r in again.events("session")[0]["rooms"]}["lobby"] == "owner"


async def test_managed_rooms_are_private_and_only_admins_add_members(node):
    ann, bob, cid = [await node.connect(u) for u in ("ann", "bob", "cid")]
    await node.rooms.create(ann.conn.user, "team", None, False, True)
    await node.settle()
    room = node.world.rooms.rooms["team"]
    assert room.private and room.managed
    await refused(bob, "join", {"room": "team"}, "forbidden")
    await ok(ann, "invite", {"room": "team", "user": "bob"})
    await refused(bob, "invite", {"room": "team", "user": "cid"}, "forbidden")
    await ok(ann, "role", {"room": "team", "user": "bob", "role": "admin"})
    await ok(bob, "invite", {"room": "team", "user": "cid"})
    # A private room that is not managed keeps the contract's rule: any member invites.
    await room_of(node, ann, "den", private=True)
    await ok(ann, "invite", {"room": "den", "user": "bob"})
    await ok(bob, "invite", {"room": "den", "user": "cid"})
    assert [j["room"] for j in cid.events("joined")] == ["team", "den"]


async def test_joins_racing_for_the_last_place_get_it_once(world):
    node = MemoryNode(world, "n1", members_max=10)
    ann, *others = [await node.connect(u) for u in ("ann", "bob", "cid", "dan")]
    await node.rooms.create(ann.conn.user, "club", None, False, False, 2)
    # All three pass the early count (each awaits it before any adds); the add decides.
    acks = await asyncio.gather(*(c.call("join", {"room": "club"}) for c in others))
    assert sorted(a["ok"] for a in acks) == [False, False, True]
    assert {a["error"]["code"] for a in acks if not a["ok"]} == {"room_full"}
    assert len(world.rooms.members["club"]) == 2


async def test_member_limits_are_enforced_on_join_and_invite(world):
    node = MemoryNode(world, "n1", members_max=3)
    ann, bob, cid, dan = [await node.connect(u) for u in ("ann", "bob", "cid", "dan")]
    with pytest.raises(Exception, match="member_limit"):
        await node.rooms.create(ann.conn.user, "big", None, False, False, 4)
    await node.rooms.create(ann.conn.user, "club", None, False, False, 2)
    await ok(bob, "join", {"room": "club"})
    await refused(cid, "join", {"room": "club"}, "room_full")
    await refused(ann, "invite", {"room": "club", "user": "cid"}, "room_full")
    await ok(bob, "join", {"room": "club"})  # a member joining again is no newcomer
    settings = await ok(ann, "room_settings", {"room": "club", "member_limit": 3})
    assert settings["room"]["member_limit"] == 3 and settings["room"]["role"] == "owner"
    await ok(cid, "join", {"room": "club"})
    await refused(dan, "join", {"room": "club"}, "room_full")  # the deployment's bound
    await refused(ann, "room_settings", {"room": "club", "member_limit": 4}, "invalid_room")
    await refused(bob, "room_settings", {"room": "club", "managed": True}, "forbidden")
    managed = (await ok(ann, "room_settings", {"room": "club", "managed": True}))["room"]
    assert managed["managed"] is True and managed["private"] is True
    assert "club" not in await world.rooms.public_rooms()


async def test_an_owner_alone_may_leave_and_the_creator_owns_the_room_again(node, world):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    room = await room_of(node, ann, "club", bob)
    await refused(ann, "leave", {"room": room}, "owner_must_transfer")
    await ok(bob, "leave", {"room": room})
    await ok(ann, "leave", {"room": room})
    assert world.rooms.roles[room] == {} and world.rooms.members[room] == set()
    assert (await bob.call("join", {"room": room}))["room"]["role"] == "member"
    assert (await ann.call("join", {"room": room}))["room"]["role"] == "owner"


async def test_a_ban_landing_between_the_check_and_the_add_still_keeps_the_user_out(node, world):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    room = await room_of(node, ann, "club")
    checked = node.roles.check_entry

    async def ban_lands_right_after(room_obj, user_id):
        await checked(room_obj, user_id)
        world.moderation.bans.setdefault(room_obj.id, {})[user_id] = 0

    node.roles.check_entry = ban_lands_right_after  # type: ignore[method-assign]
    ack = await bob.call("join", {"room": room})
    assert ack["error"]["code"] == "banned"
    assert not await world.rooms.is_member(room, "bob") and bob.events("joined") == []


async def test_a_deleted_owners_rooms_go_to_an_admin_else_to_a_member(node, other, world):
    ann, bob, cid, dan = (
        await node.connect("ann"), await node.connect("bob"), await other.connect("cid"),
        await other.connect("dan"),
    )  # fmt: skip
    club = await room_of(node, ann, "club", bob, cid, dan)
    await ok(ann, "role", {"room": club, "user": "cid", "role": "admin"})
    den = await room_of(node, ann, "den", bob, private=True)
    alone = await room_of(node, ann, "alone")
    guest = await room_of(node, bob, "guest", ann)
    for client in (bob, cid, dan):
        client.clear()

    await node.deletion.delete(world.accounts.records["ann"])
    await node.settle()
    await other.settle()

    gone = {"id": "ann", "name": "Deleted user"}
    # The admin, not the member listed first, gets the room; everyone sees the transfer.
    entry = next(m for m in dan.events("message") if m.get("action") == "transfer")
    assert entry["room"] == club and entry["from"] == gone and entry["user"]["id"] == "cid"
    assert entry in (await dan.call("history", {"room": club}))["messages"]
    assert world.rooms.roles[club] == {"cid": "owner"}
    await ok(cid, "room_settings", {"room": club, "member_limit": 10})  # owners only
    # No admin: a member.
    assert world.rooms.roles[den] == {"bob": "owner"}
    await ok(bob, "room_settings", {"room": den, "member_limit": 5})
    # Nobody left to take it, or not ann's: nothing to transfer.
    assert world.rooms.roles[alone] == {} and world.rooms.roles[guest] == {"bob": "owner"}
    transfers = [m for m in bob.events("message") if m.get("action") == "transfer"]
    assert [m["room"] for m in transfers] == [club, den]


async def test_a_deleted_owners_room_skips_a_candidate_who_cannot_take_it(node, world):
    ann, bob, cid = await node.connect("ann"), await node.connect("bob"), await node.connect("cid")
    club = await room_of(node, ann, "club", bob, cid)
    await ok(ann, "role", {"room": club, "user": "bob", "role": "admin"})
    await ok(bob, "leave", {"room": club})  # an admin who left is no candidate
    world.rooms.roles[club]["bob"] = "admin"  # as a leave racing the deletion's read

    await node.deletion.delete(world.accounts.records["ann"])

    assert world.rooms.roles[club] == {"bob": "admin", "cid": "owner"}


async def test_room_settings_reach_every_members_socket_live(node, other):
    ann, ann_phone, bob, cid = (
        await node.connect("ann"), await other.connect("ann"), await other.connect("bob"),
        await node.connect("cid"),
    )  # fmt: skip
    room = await room_of(node, ann, "club", bob)
    for client in (ann, ann_phone, bob, cid):
        client.clear()

    answer = await ok(ann, "room_settings", {"room": room, "managed": True, "member_limit": 5})
    await node.settle()
    await other.settle()

    shown = {"id": room, "name": answer["room"]["name"], "private": True, "managed": True,
             "member_limit": 5}  # fmt: skip
    for client in (ann, ann_phone, bob):
        assert client.events("room_updated") == [{"room": shown}]
    assert cid.events("room_updated") == []  # not a member
    await refused(bob, "room_settings", {"room": room, "member_limit": 3}, "forbidden")
    assert bob.events("room_updated") == [{"room": shown}]  # a refusal announces nothing


async def test_a_deletion_whose_transfer_meets_a_failed_store_stops_there(node, world, monkeypatch):
    ann, bob, cid = await node.connect("ann"), await node.connect("bob"), await node.connect("cid")
    club = await room_of(node, ann, "club", bob, cid)
    asked = []

    async def down(request):
        asked.append(request.target.id)
        raise unavailable("storage is not connected")

    monkeypatch.setattr(world.moderation, "moderate", down)
    with pytest.raises(ChatError) as failed:
        await node.deletion.delete(world.accounts.records["ann"])
    assert failed.value.code == "unavailable" and len(asked) == 1  # not every candidate
    assert "ann" in world.rooms.members[club]  # not removed: `chat users delete` finishes it
