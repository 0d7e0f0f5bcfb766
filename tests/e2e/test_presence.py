"""Presence across the fleet: several node processes, real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
from sioclient import Client, connected
from stack import Stack, register, start_stack
from test_accounts import call
from test_rooms import make_room, messages_of

GRACE = 5.0  # the default grace period


async def presence_events(client: Client, count: int, timeout: float = 40.0) -> list[dict]:
    return [await client.next("presence", timeout=timeout) for _ in range(count)]


async def register_many(stack: Stack, count: int) -> list:
    return await asyncio.gather(*(register(stack.url(i % 2)) for i in range(count)))


async def test_watching_sees_online_then_offline_after_the_grace_period_without_flaps(
    stack: Stack,
):
    watcher, user = await register(stack.url(0)), await register(stack.url(1))
    async with connected(stack.url(0), watcher.token) as w:
        ack = await w.call("watch", {"users": [user.id]})
        assert ack == {"ok": True, "online": {user.id: False}}
        first = await Client().connect(stack.url(1), user.token)
        event = await w.next("presence")
        assert (event["user"], event["online"]) == (user.id, True)
        assert abs(event["ts"] - time.time() * 1000) < 60_000

        second = await Client().connect(stack.url(0), user.token)
        await first.close()
        closed_at = time.monotonic()
        await second.close()
        event = await w.next("presence", timeout=GRACE + 10)
        assert (event["user"], event["online"]) == (user.id, False)
        assert time.monotonic() - closed_at >= GRACE - 0.5  # not before the grace period
        assert w.pending("presence") == []  # the second socket's coming and going: no event
        ack = await w.call("online", {"users": [user.id]})
        assert ack["online"] == {user.id: False}


async def test_a_quick_reconnect_produces_no_flap(stack: Stack):
    watcher, user = await register(stack.url(0)), await register(stack.url(1))
    async with connected(stack.url(0), watcher.token) as w:
        await w.call("watch", {"users": [user.id]})
        async with connected(stack.url(1), user.token):
            assert (await w.next("presence"))["online"] is True
        async with connected(stack.url(0), user.token):  # back within the grace period
            await asyncio.sleep(GRACE + 1.5)  # outlast the grace period: a flap would show now
        assert w.pending("presence") == []
        assert (await w.next("presence", timeout=GRACE + 10))["online"] is False


async def test_online_for_100_users_on_two_nodes_is_exact(stack: Stack):
    users = await register_many(stack, 100)
    sockets = [await Client().connect(stack.url(i % 2), u.token) for i, u in enumerate(users[:60])]
    try:
        async with connected(stack.url(0), users[0].token) as asker:
            ack = await asker.call("online", {"users": [u.id for u in users]})
            assert ack["online"] == {u.id: i < 60 for i, u in enumerate(users)}
            too_many = await asker.call("online", {"users": [u.id for u in users] + ["x"]})
            assert too_many["error"]["code"] == "invalid_request"
    finally:
        await asyncio.gather(*(s.close() for s in sockets))


async def test_members_lists_online_users_first_whichever_node_they_are_on(stack: Stack):
    owner, *others = await register_many(stack, 4)
    rid = await make_room(stack, owner)
    online_ids = {owner.id, others[0].id, others[1].id}
    async with (
        connected(stack.url(0), owner.token) as o,
        connected(stack.url(1), others[0].token) as a,
        connected(stack.url(0), others[1].token) as b,
    ):
        for client in (a, b):
            assert (await client.call("join", {"room": rid}))["ok"]
        status, _, _ = await call(
            "POST", stack.url(1) + f"/api/rooms/{rid}/messages", {"text": "x"}, others[2].token
        )
        assert status == 403  # not a member yet
        assert (await o.call("invite", {"room": rid, "user": others[2].id}))["ok"]  # offline
        ack = await o.call("members", {"room": rid})
        assert ack["count"] == 4 and ack["has_more"] is False
        flags = [m["online"] for m in ack["members"]]
        assert flags == [True, True, True, False]
        assert {m["id"] for m in ack["members"][:3]} == online_ids
        page = await o.call("members", {"room": rid, "offset": 2, "limit": 1})
        assert len(page["members"]) == 1 and page["has_more"] is True and page["count"] == 4


async def test_private_room_members_are_hidden_from_outsiders(stack: Stack):
    owner, stranger = await register(stack.url(0)), await register(stack.url(1))
    rid = await make_room(stack, owner, private=True)
    async with connected(stack.url(1), stranger.token) as s:
        assert (await s.call("members", {"room": rid}))["error"]["code"] == "forbidden"


async def test_a_rename_is_seen_live_by_watchers_and_room_members_and_on_later_messages(
    stack: Stack,
):
    user, watcher, member = [await register(stack.url(i % 2)) for i in range(3)]
    rid = await make_room(stack, user)
    async with (
        connected(stack.url(0), user.token) as u,
        connected(stack.url(1), watcher.token) as w,
        connected(stack.url(1), member.token) as m,
    ):
        await w.call("watch", {"users": [user.id]})
        assert (await m.call("join", {"room": rid}))["ok"]
        ack = await u.call("rename", {"name": "  New Name  "})
        assert ack["user"] == {"id": user.id, "name": "New Name"}
        expected = {"id": user.id, "name": "New Name"}
        assert await w.next("user") == expected
        assert await m.next("user") == expected
        assert await u.next("user") == expected
        sent = await u.call("send", {"room": rid, "text": "from the new name"})
        assert sent["message"]["from"] == expected
        assert (await messages_of(m, 1, rid))[0]["from"] == expected
        status, _, _ = await call("PATCH", stack.url(1) + "/api/me", {"name": "Third"}, user.token)
        assert status == 200
        # One `user` event per room the two share (here the lobby and the room): idempotent.
        while (event := await m.next("user"))["name"] != "Third":
            assert event == expected
        assert (await u.call("rename", {"name": ""}))["error"]["code"] == "invalid_name"


async def test_typing_reaches_the_others_and_is_throttled(stack: Stack):
    user, other = await register(stack.url(0)), await register(stack.url(1))
    rid = await make_room(stack, user)
    async with connected(stack.url(0), user.token) as u, connected(stack.url(1), other.token) as o:
        assert (await o.call("join", {"room": rid}))["ok"]
        assert (await u.call("typing", {"room": rid})) == {"ok": True, "sent": True}
        assert await o.next("typing") == {"room": rid, "user": {"id": user.id, "name": user.name}}
        assert (await u.call("typing", {"room": rid})) == {"ok": True, "sent": False}
        page = await u.call("history", {"room": rid})
        assert page["messages"] == []  # never stored
        assert u.pending("typing") == []
        ack = await o.call("typing", {"room": "lobby"})
        assert ack["sent"] is True


async def test_watch_limits(stack: Stack):
    user = await register(stack.url(0))
    async with connected(stack.url(0), user.token) as client:
        ack = await client.call("watch", {"users": [f"u{i}" for i in range(101)]})
        assert ack["error"]["code"] == "invalid_request"
        for start in range(0, 1000, 100):
            batch = {"users": [f"u{i}" for i in range(start, start + 100)]}
            assert (await client.call("watch", batch))["ok"]
        assert (await client.call("watch", {"users": ["one-more"]}))["error"]["code"] == "too_many"
        assert (await client.call("unwatch", {"users": ["u1"]}))["ok"]
        assert (await client.call("watch", {"users": ["one-more"]}))["ok"]


# --- crashes ---------------------------------------------------------------------------------


@pytest.mark.slow
async def test_kill_9_a_node_its_users_go_offline_within_30_s_once_each(
    redis_fleet, tmp_path, jwt_secret
):
    with start_stack(redis_fleet, tmp_path, jwt_secret, nodes=2) as stack:
        watcher = await register(stack.url(1))
        users = await register_many(stack, 20)
        async with connected(stack.url(1), watcher.token) as w:
            await w.call("watch", {"users": [u.id for u in users]})
            sockets = [await Client().connect(stack.url(0), u.token) for u in users]
            online = await presence_events(w, 20)
            assert {e["user"] for e in online if e["online"]} == {u.id for u in users}

            stack.nodes[0].kill()
            killed = time.monotonic()
            offline = await presence_events(w, 20, timeout=30)
            assert time.monotonic() - killed < 30
            assert sorted(e["user"] for e in offline) == sorted(u.id for u in users)
            assert not any(e["online"] for e in offline)
            await asyncio.sleep(2)  # a window for duplicates to show, if there were any
            assert w.pending("presence") == []
            ack = await w.call("online", {"users": [u.id for u in users]})
            assert not any(ack["online"].values())
            for socket in sockets:
                await socket.close()


@pytest.mark.slow
async def test_kill_9_a_node_whose_users_reconnect_at_once_reports_nobody_offline(
    redis_fleet, tmp_path, jwt_secret
):
    with start_stack(redis_fleet, tmp_path, jwt_secret, nodes=2) as stack:
        watcher = await register(stack.url(1))
        users = await register_many(stack, 10)
        async with connected(stack.url(1), watcher.token) as w:
            await w.call("watch", {"users": [u.id for u in users]})
            sockets = [await Client().connect(stack.url(0), u.token) for u in users]
            await presence_events(w, 10)
            stack.nodes[0].kill()
            again = [await Client().connect(stack.url(1), u.token) for u in users]
            # Lease (15 s) + a purge round + the grace period: any wrong offline shows by now.
            await asyncio.sleep(25)
            assert w.pending("presence") == []
            ack = await w.call("online", {"users": [u.id for u in users]})
            assert all(ack["online"].values())
            for socket in sockets + again:
                await socket.close()


@pytest.mark.slow
async def test_a_paused_node_does_not_mark_users_who_moved_offline_when_it_wakes(
    redis_fleet, tmp_path, jwt_secret
):
    with start_stack(redis_fleet, tmp_path, jwt_secret, nodes=2) as stack:
        watcher = await register(stack.url(1))
        movers, stayer = await register_many(stack, 5), await register(stack.url(0))
        async with connected(stack.url(1), watcher.token) as w:
            await w.call("watch", {"users": [u.id for u in [*movers, stayer]]})
            old = [await Client().connect(stack.url(0), u.token) for u in movers]
            stuck = await Client().connect(stack.url(0), stayer.token)
            await presence_events(w, 6)

            stack.nodes[0].pause()
            try:
                moved = [await Client().connect(stack.url(1), u.token) for u in movers]
                await asyncio.sleep(20)  # the pause under test: past the 15 s lease
            finally:
                stack.nodes[0].resume()
            await asyncio.sleep(30)  # "after 30 s presence is exactly right"
            events = w.pending("presence")
            assert not [e for e in events if e["user"] in {u.id for u in movers}]
            ack = await w.call("online", {"users": [u.id for u in [*movers, stayer]]})
            assert all(ack["online"].values())
            # The stayer's only socket sat on the sleeping node: purged meanwhile (offline),
            # then registered again by the node when it woke (online): the truth both times.
            assert [e["online"] for e in events if e["user"] == stayer.id] == [False, True]
            for socket in old + moved + [stuck]:
                await socket.close()
