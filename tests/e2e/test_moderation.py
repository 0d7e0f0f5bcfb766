"""Roles, managed rooms and moderation end to end: two node processes, real shards and cluster,
real Socket.IO clients; each action reaches every member on both nodes as a stream entry, a
banned user's sockets leave the room on both nodes within a second, and refusals change
nothing."""

from __future__ import annotations

import asyncio
import time

from sioclient import Client, connected
from stack import Stack, User, register
from test_accounts import call
from test_rooms import make_room, room_id

from chat import keys

#: How soon a removed user's sockets must stop receiving the room (issue 17).
WITHIN = 1.0


async def ok(client: Client, event: str, payload: dict) -> dict:
    ack = await client.call(event, payload)
    assert ack["ok"] is True, ack
    return ack


async def code(client: Client, event: str, payload: dict) -> str:
    ack = await client.call(event, payload)
    assert ack["ok"] is False, ack
    return ack["error"]["code"]


async def next_in(client: Client, room: str, timeout: float = 10.0) -> dict:
    """The next ``message`` event of ``room`` (other rooms' traffic skipped)."""
    while True:
        message = await client.next("message", timeout)
        if message["room"] == room:
            return message


async def last_seq(stack: Stack, user: User, room: str) -> int:
    _, body, _ = await call("GET", stack.url(1) + f"/api/rooms/{room}/messages", token=user.token)
    return max((m["seq"] for m in body["messages"]), default=0)


async def until_ok(client: Client, event: str, payload: dict, refused: str) -> dict:
    """Retry while the answer is ``refused`` (an expiry is a time, not an event to await)."""
    deadline = time.monotonic() + 10
    while True:
        ack = await client.call(event, payload)
        if ack["ok"] or time.monotonic() > deadline:
            return ack
        assert ack["error"]["code"] == refused, ack
        await asyncio.sleep(0.1)


async def test_each_action_reaches_every_member_on_both_nodes_and_a_ban_removes_everywhere(
    stack: Stack,
):
    ann, bob, cid = [
        await register(stack.url(i % 2), n) for i, n in enumerate(("Ann", "Bob", "Cid"))
    ]
    room = await make_room(stack, ann)
    async with (
        connected(stack.url(0), ann.token) as a0,
        connected(stack.url(1), bob.token) as b1,
        connected(stack.url(0), cid.token) as c0,
        connected(stack.url(1), cid.token) as c1,
    ):
        for client in (b1, c0):
            await ok(client, "join", {"room": room})
        await c1.next("joined")  # cid's other device follows the room too
        watchers = (a0, b1, c0, c1)

        actions = [
            (a0, "role", {"user": bob.id, "role": "admin"}),
            (b1, "mute", {"user": cid.id, "duration_s": 600}),
            (b1, "unmute", {"user": cid.id}),
        ]
        for actor, event, payload in actions:
            entry = (await ok(actor, event, {"room": room, **payload}))["message"]
            assert (entry["kind"], entry["action"], entry["user"]["id"]) == (
                "moderation", event, payload["user"],
            )  # fmt: skip
            for client in watchers:  # live, on both nodes, every device
                assert await next_in(client, room) == entry

        said = (await ok(c1, "send", {"room": room, "text": "spam"}))["message"]
        for client in watchers:
            assert (await next_in(client, room))["id"] == said["id"]
        deleted = (await ok(b1, "delete", {"room": room, "id": said["id"]}))["message"]
        assert deleted["by_moderator"] is True
        for client in watchers:
            assert await next_in(client, room) == deleted

        ban = (await ok(b1, "ban", {"room": room, "user": cid.id}))["message"]
        banned_at = time.monotonic()
        for device in (c0, c1):  # both of cid's sockets, on both nodes, within a second
            left = await device.next("left", timeout=WITHIN)
            assert left == {"room": room, "user": {"id": cid.id, "name": "Cid"}}
        assert time.monotonic() - banned_at < WITHIN + 0.5
        for client in (a0, b1):
            assert await next_in(client, room) == ban
            assert (await client.next("left"))["user"]["id"] == cid.id
        after = (await ok(a0, "send", {"room": room, "text": "without cid"}))["message"]
        for client in (a0, b1):  # one socket per node has it: cid's there would have too
            assert (await next_in(client, room))["id"] == after["id"]
        for device in (c0, c1):
            assert after["id"] not in {m["id"] for m in device.pending("message")}
        assert await code(c0, "send", {"room": room, "text": "x"}) == "forbidden"
        assert await code(c1, "join", {"room": room}) == "banned"
        assert await code(a0, "invite", {"room": room, "user": cid.id}) == "banned"

        await ok(a0, "unban", {"room": room, "user": cid.id})
        joined = (await ok(c1, "join", {"room": room}))["room"]
        assert joined["role"] == "member"

        # A fresh device of a member gets every entry back with sync, in its place.
        async with connected(stack.url(1), cid.token) as later:
            session = await later.next("session")
            pointer = next(r for r in session["rooms"] if r["id"] == room)["last_seq"]
            synced = (await ok(later, "sync", {"rooms": {room: 0}}))["rooms"][room]["messages"]
        kinds = [(m.get("kind"), m.get("action")) for m in synced]
        assert kinds == [
            ("moderation", "role"), ("moderation", "mute"), ("moderation", "unmute"),
            (None, None), ("delete", None), ("moderation", "ban"), (None, None),
            ("moderation", "unban"),
        ]  # fmt: skip
        assert synced[-1]["seq"] == pointer and synced[1]["until"] > synced[1]["ts"]


async def test_timed_bans_and_mutes_end_by_themselves(stack: Stack):
    ann, bob = await register(stack.url(0)), await register(stack.url(1))
    room = await make_room(stack, ann)
    async with (
        connected(stack.url(0), ann.token) as a,
        connected(stack.url(1), bob.token) as b,
    ):
        await ok(b, "join", {"room": room})
        mute = (await ok(a, "mute", {"room": room, "user": bob.id, "duration_s": 1}))["message"]
        assert mute["until"] == mute["ts"] + 1000
        assert await code(b, "send", {"room": room, "text": "x"}) == "muted"
        sent = await until_ok(b, "send", {"room": room, "text": "free"}, "muted")
        assert sent["ok"] and sent["message"]["ts"] >= mute["until"]

        ban = (await ok(a, "ban", {"room": room, "user": bob.id, "duration_s": 1}))["message"]
        await b.next("left", timeout=WITHIN)
        joined = await until_ok(b, "join", {"room": room}, "banned")
        assert joined["ok"], joined
        assert ban["until"] == ban["ts"] + 1000


async def test_refusals_change_nothing(stack: Stack):
    ann, bob, cid = [await register(stack.url(i % 2)) for i in range(3)]
    room = await make_room(stack, ann)
    async with (
        connected(stack.url(0), ann.token) as a,
        connected(stack.url(1), bob.token) as b,
        connected(stack.url(0), cid.token) as c,
    ):
        for client in (b, c):
            await ok(client, "join", {"room": room})
        await ok(a, "role", {"room": room, "user": bob.id, "role": "admin"})
        before = await last_seq(stack, ann, room)
        refusals = [
            (c, "role", {"user": cid.id, "role": "admin"}, "forbidden"),  # escalation
            (c, "transfer", {"user": cid.id}, "forbidden"),
            (b, "role", {"user": cid.id, "role": "admin"}, "forbidden"),  # only the owner
            (b, "kick", {"user": ann.id}, "forbidden"),  # an admin on the owner
            (b, "ban", {"user": ann.id}, "forbidden"),
            (c, "kick", {"user": bob.id}, "forbidden"),  # a member on anyone
            (a, "kick", {"user": ann.id}, "forbidden"),  # on oneself
            (a, "leave", {}, "owner_must_transfer"),  # the last owner
            (a, "kick", {"user": "nobody-here"}, "no_user"),
        ]
        for client, event, payload, expected in refusals:
            assert await code(client, event, {"room": room, **payload}) == expected, event
        assert await last_seq(stack, ann, room) == before
        members = (await ok(c, "members", {"room": room}))["members"]
        roles = {m["id"]: m["role"] for m in members}
        assert roles == {ann.id: "owner", bob.id: "admin", cid.id: "member"}
        await ok(c, "send", {"room": room, "text": "still a plain member"})

        await ok(a, "transfer", {"room": room, "user": bob.id})
        await ok(a, "leave", {"room": room})  # no longer the owner
        assert await code(b, "leave", {"room": room}) == "owner_must_transfer"


async def test_managed_rooms_limits_and_the_rest_mirrors(stack: Stack):
    ann, bob, cid, dan = [await register(stack.url(i % 2)) for i in range(4)]
    rid = room_id()
    status, body, _ = await call(
        "POST", stack.url(0) + "/api/rooms",
        {"id": rid, "managed": True, "member_limit": 3}, ann.token,
    )  # fmt: skip
    assert status == 201, body
    assert body["room"] == {
        "id": rid, "name": rid, "private": True, "last_seq": 0, "managed": True,
        "member_limit": 3, "role": "owner",
    }  # fmt: skip
    async with (
        connected(stack.url(1), bob.token) as b,
        connected(stack.url(0), cid.token) as c,
    ):
        assert await code(b, "join", {"room": rid}) == "forbidden"
        status, _, _ = await call("POST", stack.url(1) + "/api/rooms", {"id": rid}, bob.token)
        assert status == 409
        async with connected(stack.url(0), ann.token) as a:
            await ok(a, "invite", {"room": rid, "user": bob.id})
            assert (await b.next("joined"))["room"] == rid
            assert await code(b, "invite", {"room": rid, "user": cid.id}) == "forbidden"
            await ok(a, "invite", {"room": rid, "user": cid.id})
            assert await code(a, "invite", {"room": rid, "user": dan.id}) == "room_full"
            assert (await c.next("joined"))["room"] == rid

        url = stack.url(1) + f"/api/rooms/{rid}"
        status, body, _ = await call("POST", url + "/kick", {"user": cid.id}, bob.token)
        assert (status, body["error"]["code"]) == (403, "forbidden")
        status, body, _ = await call("POST", url + "/kick", {"user": cid.id}, ann.token)
        assert status == 200 and body["message"]["action"] == "kick"
        assert (await c.next("left", timeout=WITHIN))["room"] == rid
        status, body, _ = await call(
            "POST", url + "/mute", {"user": bob.id, "duration_s": 60}, ann.token
        )
        assert status == 200 and body["message"]["until"] > body["message"]["ts"]
        assert await code(b, "send", {"room": rid, "text": "x"}) == "muted"
        status, body, _ = await call("PATCH", url, {"member_limit": 10}, ann.token)
        assert status == 200 and body["room"]["member_limit"] == 10
        updated = (await b.next("room_updated", timeout=WITHIN))["room"]
        assert updated == {k: v for k, v in body["room"].items() if k not in ("last_seq", "role")}
        status, body, _ = await call("PATCH", url, {"member_limit": 10}, bob.token)
        assert (status, body["error"]["code"]) == (403, "forbidden")
        _, rooms, _ = await call("GET", stack.url(0) + "/api/rooms", token=bob.token)
        mine = next(r for r in rooms["rooms"] if r["id"] == rid)
        assert (mine["role"], mine["managed"], mine["member_limit"]) == ("member", True, 10)


async def test_a_service_admin_moderates_any_room_over_rest_without_being_a_member(stack: Stack):
    """The admin REST API: a bot whose service token has the ``admin`` scope is listed in
    ``service_admins_key`` (written here directly: the tokens are another part's) and acts as
    an owner of every room."""
    ann, bob, bot = [await register(stack.url(i % 2)) for i in range(3)]
    rid = await make_room(stack, ann, private=True)
    admins = keys.service_admins_key()
    master = stack.fleet.master_for_key(admins)
    url = stack.url(1) + f"/api/rooms/{rid}"
    async with connected(stack.url(0), ann.token) as a, connected(stack.url(1), bob.token) as b:
        await ok(a, "invite", {"room": rid, "user": bob.id})
        said = (await ok(b, "send", {"room": rid, "text": "abuse"}))["message"]
        status, body, _ = await call("POST", url + "/ban", {"user": bob.id}, bot.token)
        assert (status, body["error"]["code"]) == (403, "forbidden")  # not yet an admin
        master.command("SADD", admins, bot.id)
        try:
            status, body, _ = await call("DELETE", url + f"/messages/{said['id']}", None, bot.token)
            assert status == 200 and body["message"]["by_moderator"] is True
            status, body, _ = await call("POST", url + "/ban", {"user": bob.id}, bot.token)
            assert status == 200 and body["message"]["from"]["id"] == bot.id
            assert (await b.next("left", timeout=WITHIN))["room"] == rid
            status, body, _ = await call("POST", url + "/kick", {"user": ann.id}, bot.token)
            assert (status, body["error"]["code"]) == (403, "forbidden")  # never the owner
            status, _, _ = await call("POST", url + "/invite", {"user": bob.id}, bot.token)
            assert status == 404  # no such route: invites are the event's
        finally:
            master.command("SREM", admins, bot.id)
        live = [await next_in(a, rid) for _ in range(3)]
        assert [m.get("kind") for m in live] == [None, "delete", "moderation"]
        assert live[0]["id"] == said["id"] and live[2]["action"] == "ban"
