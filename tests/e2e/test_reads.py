"""Read positions, unread counts and receipts end to end (issue 16, items 1, 2 and 8): two
node processes, real shards and cluster, python-socketio clients on both nodes.

Absence is awaited, never slept on: a receipt that must not come is checked once a later
control on the same channel (a ``settings`` change of the receiving user, published from the
other node so that it crosses the same shard) has been delivered after it."""

from __future__ import annotations

import asyncio

from sioclient import Client, connected
from stack import Stack, register
from test_accounts import call
from test_rooms import make_room


async def fill(client: Client, room: str, count: int) -> list[dict]:
    acks = [await client.call("send", {"room": room, "text": f"m{i}"}) for i in range(count)]
    assert all(a["ok"] for a in acks), acks
    return [a["message"] for a in acks]


def room_in(rooms: list[dict], room: str) -> dict:
    [found] = [r for r in rooms if r["id"] == room]
    return found


async def rooms_by_rest(stack: Stack, node: int, user) -> list[dict]:
    status, body, _ = await call("GET", stack.url(node) + "/api/rooms", token=user.token)
    assert status == 200, body
    return body["rooms"]


async def test_a_read_reaches_every_device_and_unread_is_the_same_everywhere(stack: Stack):
    ann, bob = await register(stack.url(0), "Ann"), await register(stack.url(1), "Bob")
    room = await make_room(stack, ann)
    async with (
        connected(stack.url(0), ann.token) as laptop,
        connected(stack.url(1), ann.token) as phone,
        connected(stack.url(1), bob.token) as b,
    ):
        assert (await b.call("join", {"room": room}))["ok"]
        await fill(b, room, 3)
        await b.call("send", {"room": room, "text": f"hi @{ann.name}"})
        ack = await laptop.call("read", {"room": room, "seq": 2})
        assert ack == {"ok": True, "room": {"id": room, "last_seq": 4, "read_seq": 2,
                                             "unread": 2, "mentions": 1}}  # fmt: skip
        expected = {"room": room, "seq": 2, "unread": 2, "mentions": 1}
        assert await phone.next("read") == expected
        assert await laptop.next("read") == expected
        # A lower seq: ok, nothing changes, nothing is sent (the next read event is the 4's).
        assert (await phone.call("read", {"room": room, "seq": 1}))["room"]["read_seq"] == 2
        beyond = await phone.call("read", {"room": room, "seq": 5})
        assert beyond["ok"] is False and beyond["error"]["code"] == "invalid_seq"
        await phone.call("read", {"room": room, "seq": 4})
        assert (await laptop.next("read"))["seq"] == 4
        assert b.pending("read") == []
    for node in (0, 1):
        async with connected(stack.url(node), ann.token) as again:
            session = await again.next("session")
            mine = room_in(session["rooms"], room)
            assert (mine["last_seq"], mine["read_seq"], mine["unread"], mine["mentions"]) == (
                4, 4, 0, 0,
            )  # fmt: skip
        listed = room_in(await rooms_by_rest(stack, node, ann), room)
        assert (listed["read_seq"], listed["unread"], listed["mentions"]) == (4, 0, 0)
    listed = room_in(await rooms_by_rest(stack, 1, bob), room)
    assert (listed["read_seq"], listed["unread"]) == (0, 0)  # bob's own messages


async def test_the_rest_read_route_and_the_join_ack_carry_the_counts(stack: Stack):
    ann, bob = await register(stack.url(0)), await register(stack.url(1))
    room = await make_room(stack, ann)
    async with connected(stack.url(0), ann.token) as a:
        await fill(a, room, 3)
        async with connected(stack.url(1), bob.token) as b:
            joined = await b.call("join", {"room": room})
            # What came before he joined is not unread to him: he starts at the newest message.
            assert (joined["room"]["unread"], joined["room"]["read_seq"]) == (0, 3)
            await fill(a, room, 3)
            url = stack.url(1) + f"/api/rooms/{room}/read"
            status, body, _ = await call("POST", url, {"seq": 5}, bob.token)
            assert status == 200 and body["room"]["unread"] == 1
            assert await b.next("read") == {"room": room, "seq": 5, "unread": 1, "mentions": 0}
            for bad, code in (({"seq": -1}, "invalid_request"), ({"seq": 9}, "invalid_seq")):
                status, body, _ = await call("POST", url, bad, bob.token)
                assert (status, body["error"]["code"]) == (400, code)


async def test_receipts_in_a_dm_across_nodes(stack: Stack):
    ann, bob = await register(stack.url(0)), await register(stack.url(1))
    dm = "dm:" + ":".join(sorted((ann.id, bob.id)))
    async with (
        connected(stack.url(0), ann.token) as a,
        connected(stack.url(1), bob.token) as b,
    ):
        sent = await a.call("dm", {"to": bob.id, "text": "seen?"})
        await b.call("read", {"room": dm, "seq": sent["message"]["seq"]})
        assert await a.next("receipt") == {"room": dm, "user": bob.id, "seq": 1}
        history = await a.call("history", {"room": dm})
        assert history["receipts"] == {bob.id: 1}
        members = await a.call("members", {"room": dm})
        assert {m["id"]: m.get("read_seq") for m in members["members"]} == {
            ann.id: None, bob.id: 1,
        }  # fmt: skip
        assert b.pending("receipt") == []


async def test_receipts_in_a_small_room_and_none_in_a_large_one(stack: Stack):
    users = await asyncio.gather(*(register(stack.url(i % 2)) for i in range(22)))
    owner, reader, watcher = users[:3]
    small, large = await make_room(stack, owner), await make_room(stack, owner)
    async with (
        connected(stack.url(0), owner.token) as o,
        connected(stack.url(1), reader.token) as r,
        connected(stack.url(0), watcher.token) as w,
        connected(stack.url(1), watcher.token) as w_phone,
    ):
        for user in (reader, watcher):
            assert (await o.call("invite", {"room": small, "user": user.id}))["ok"]
        for user in users[1:]:  # 22 members: above the limit of 20
            assert (await o.call("invite", {"room": large, "user": user.id}))["ok"]
        await fill(o, small, 1)
        await fill(o, large, 1)
        await r.call("read", {"room": large, "seq": 1})
        await r.call("read", {"room": small, "seq": 1})
        assert await w.next("receipt") == {"room": small, "user": reader.id, "seq": 1}
        assert await o.next("receipt") == {"room": small, "user": reader.id, "seq": 1}
        assert await w_phone.next("receipt") == {"room": small, "user": reader.id, "seq": 1}
        # The large room's read was published first (had it sent a receipt).
        assert w.pending("receipt") == w_phone.pending("receipt") == []
        assert "receipts" not in await o.call("history", {"room": large})
        assert (await o.call("history", {"room": small}))["receipts"] == {reader.id: 1}


async def test_receipts_off_are_neither_sent_nor_seen(stack: Stack):
    ann, bob = await register(stack.url(0)), await register(stack.url(1))
    dm = "dm:" + ":".join(sorted((ann.id, bob.id)))
    async with (
        connected(stack.url(0), ann.token) as a,
        connected(stack.url(1), ann.token) as a_phone,
        connected(stack.url(1), bob.token) as b,
        connected(stack.url(0), bob.token) as b_phone,
    ):
        url = stack.url(1) + "/api/me/settings"
        status, body, _ = await call("PATCH", url, {"receipts": False}, bob.token)
        assert (status, body) == (200, {"settings": {"receipts": False}})
        assert await b.next("settings") == await b_phone.next("settings") == {"receipts": False}
        status, body, _ = await call("GET", url, token=bob.token)
        assert body == {"settings": {"receipts": False}}
        await a.call("dm", {"to": bob.id, "text": "one"})
        await b.call("dm", {"to": ann.id, "text": "two"})
        await b.call("read", {"room": dm, "seq": 2})  # bob sends none
        await a.call("read", {"room": dm, "seq": 2})  # and sees none
        # Later controls on the same channels, from the other node: delivered after any receipt.
        assert (await b_phone.call("settings", {"receipts": False}))["ok"]
        assert (await a_phone.call("settings", {"receipts": True}))["ok"]
        assert await b.next("settings") == {"receipts": False}
        assert await a.next("settings") == {"receipts": True}
        assert a.pending("receipt") == b.pending("receipt") == b_phone.pending("receipt") == []
        assert "receipts" not in await a.call("history", {"room": dm})
        assert "receipts" not in await b.call("history", {"room": dm})
    async with connected(stack.url(0), bob.token) as again:
        assert (await again.next("session"))["settings"] == {"receipts": False}
