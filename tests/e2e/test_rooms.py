"""Rooms, DMs and history end to end: two node processes, real shards and cluster."""

from __future__ import annotations

import asyncio
import secrets

from sioclient import Client, connected
from stack import Stack, register
from test_accounts import call


def room_id() -> str:
    return f"r{secrets.token_hex(5)}"


async def make_room(stack: Stack, owner, private=False, node=0) -> str:
    rid = room_id()
    status, body, _ = await call(
        "POST", stack.url(node) + "/api/rooms", {"id": rid, "private": private}, owner.token
    )
    assert status == 201, body
    assert body["room"] == {
        "id": rid, "name": rid, "private": private, "last_seq": 0, "managed": False,
        "role": "owner",
    }  # fmt: skip
    return rid


async def messages_of(client: Client, count: int, room: str) -> list[dict]:
    got = []
    while len(got) < count:
        message = await client.next("message")
        if message["room"] == room:
            got.append(message)
    return got


async def test_a_lobby_message_reaches_every_node_and_the_senders_other_device(stack: Stack):
    alice, bob = await register(stack.url(0)), await register(stack.url(1))
    async with (
        connected(stack.url(0), alice.token) as a0,
        connected(stack.url(1), alice.token) as a1,
        connected(stack.url(1), bob.token) as b,
    ):
        session = await b.next("session")
        lobby = next(r for r in session["rooms"] if r["id"] == "lobby")
        assert lobby["private"] is False and isinstance(lobby["last_seq"], int)
        ack = await a0.call("send", {"room": "lobby", "text": "hi all", "cid": "c1"})
        assert ack["ok"] is True
        sent = ack["message"]
        for client in (a0, a1, b):
            (got,) = await messages_of(client, 1, "lobby")
            assert got == sent
        assert sent["seq"] > lobby["last_seq"]


async def test_concurrent_senders_on_two_nodes_everyone_sees_one_gap_free_order(stack: Stack):
    users = [await register(stack.url(i % 2)) for i in range(4)]
    owner = users[0]
    rid = await make_room(stack, owner)
    clients = [Client() for _ in users]
    for i, (client, user) in enumerate(zip(clients, users, strict=True)):
        await client.connect(stack.url(i % 2), user.token)
        assert (await client.call("join", {"room": rid}))["ok"]
    per_sender = 200

    async def send_all(client: Client, who: int):
        for n in range(per_sender):
            ack = await client.call(
                "send", {"room": rid, "text": f"{who}:{n}", "cid": f"{who}-{n}"}
            )
            assert ack["ok"], ack

    try:
        await asyncio.gather(*(send_all(c, i) for i, c in enumerate(clients)))
        total = per_sender * len(clients)
        for client in clients:
            got = await messages_of(client, total, rid)
            assert [m["seq"] for m in got] == list(range(1, total + 1))
            for who in range(len(clients)):  # each sender's messages in its own send order
                mine = [m["text"] for m in got if m["text"].startswith(f"{who}:")]
                assert mine == [f"{who}:{n}" for n in range(per_sender)]
    finally:
        for client in clients:
            await client.close()


async def test_session_comes_before_any_live_message_even_in_a_busy_room(stack: Stack):
    """The client learns from ``session`` from which seq it receives each room live; a live
    message queued ahead of it would fall outside what the client thinks it has."""
    sender, joiner = await register(stack.url(0)), await register(stack.url(1))
    stop = asyncio.Event()

    async def chatter(client: Client, who: int) -> None:
        n = 0
        while not stop.is_set():
            ack = await client.call("send", {"room": "lobby", "text": f"{who}:{n}"})
            assert ack["ok"], ack
            n += 1

    async with (
        connected(stack.url(0), sender.token) as s0,
        connected(stack.url(1), sender.token) as s1,
    ):
        busy = [asyncio.create_task(chatter(c, i)) for i, c in enumerate((s0, s1) * 2)]
        try:
            for attempt in range(40):
                async with connected(stack.url(attempt % 2), joiner.token) as client:
                    await client.next("session")
                    await client.next("message")  # the room is live: messages do flow
                    assert client.order[0] == "session", (attempt, client.order[:3])
        finally:
            stop.set()
            await asyncio.gather(*busy)


async def test_a_dm_reaches_every_device_of_both_users_and_their_sessions(stack: Stack):
    alice, bob = await register(stack.url(0), "Alice"), await register(stack.url(1), "Bob")
    async with (
        connected(stack.url(0), alice.token) as a0,
        connected(stack.url(1), alice.token) as a1,
        connected(stack.url(0), bob.token) as b0,
        connected(stack.url(1), bob.token) as b1,
    ):
        ack = await a0.call("dm", {"to": bob.id, "text": "psst"})
        dm = ack["message"]["room"]
        assert dm == "dm:" + ":".join(sorted((alice.id, bob.id)))
        for client in (a0, a1, b0, b1):
            assert (await messages_of(client, 1, dm))[0]["text"] == "psst"
        reply = await b1.call("send", {"room": dm, "text": "hi back"})
        assert reply["ok"] and reply["message"]["seq"] == 2
    for user, peer in ((alice, "Bob"), (bob, "Alice")):
        async with connected(stack.url(1), user.token) as again:
            rooms = {r["id"]: r for r in (await again.next("session"))["rooms"]}
            assert rooms[dm] == {
                "id": dm, "name": peer, "private": True, "last_seq": 2,
                "read_seq": 0, "unread": 1, "mentions": 0,  # each sent one, read none
                "managed": False, "role": "member",
            }  # fmt: skip
    _, body, _ = await call("GET", stack.url(0) + "/api/rooms", token=alice.token)
    assert dm in {r["id"] for r in body["rooms"]}


async def test_dm_to_nobody_is_refused(stack: Stack):
    user = await register(stack.url(0))
    async with connected(stack.url(0), user.token) as client:
        ack = await client.call("dm", {"to": "nobody123", "text": "hello?"})
        assert ack["error"]["code"] == "no_user"


async def test_private_rooms_admit_members_only_and_invitations_work(stack: Stack):
    owner, guest, stranger = [await register(stack.url(i % 2)) for i in range(3)]
    rid = await make_room(stack, owner, private=True)
    async with (
        connected(stack.url(0), owner.token) as o,
        connected(stack.url(1), guest.token) as g,
        connected(stack.url(1), stranger.token) as s,
    ):
        await o.next("session")
        assert (await o.call("send", {"room": rid, "text": "members only"}))["ok"]
        for event, payload in (
            ("send", {"room": rid, "text": "let me in"}),
            ("history", {"room": rid}),
            ("join", {"room": rid}),
            ("invite", {"room": rid, "user": stranger.id}),
        ):
            ack = await s.call(event, payload)
            assert ack["error"]["code"] == "forbidden", (event, ack)
        status, body, _ = await call(
            "GET", stack.url(0) + f"/api/rooms/{rid}/messages", token=stranger.token
        )
        assert (status, body["error"]["code"]) == (403, "forbidden")

        assert (await o.call("invite", {"room": rid, "user": guest.id}))["ok"]
        # The guest's own sockets also learn from which seq they receive the room live; what
        # was said before the invitation is not unread to them.
        assert await g.next("joined") == {
            "room": rid,
            "user": {"id": guest.id, "name": guest.name},
            "last_seq": 1,
            "read_seq": 1,
            "unread": 0,
            "mentions": 0,
        }
        assert await o.next("joined") == {"room": rid, "user": {"id": guest.id, "name": guest.name}}
        page = await g.call("history", {"room": rid})
        assert [m["text"] for m in page["messages"]] == ["members only"]
        ack = await g.call("send", {"room": rid, "text": "thanks"})
        assert ack["ok"]
        assert (await messages_of(o, 2, rid))[1]["text"] == "thanks"
        assert all(m["room"] != rid for m in s.pending("message"))


async def test_join_leave_and_the_lobby_rules(stack: Stack):
    owner, other = await register(stack.url(0)), await register(stack.url(1))
    rid = await make_room(stack, owner)
    async with connected(stack.url(0), owner.token) as o, connected(stack.url(1), other.token) as x:
        await o.next("session")
        await o.call("send", {"room": rid, "text": "before you came"})
        joined = await x.call("join", {"room": rid, "since": 0})
        assert joined["ok"] and joined["room"]["id"] == rid and joined["room"]["last_seq"] == 1
        assert [m["text"] for m in joined["missed"]] == ["before you came"]
        assert joined["has_more"] is False
        assert await o.next("joined") == {"room": rid, "user": {"id": other.id, "name": other.name}}
        assert (await x.call("leave", {"room": rid}))["ok"]
        assert await o.next("left") == {"room": rid, "user": {"id": other.id, "name": other.name}}
        assert (await x.call("send", {"room": rid, "text": "gone"}))["error"]["code"] == "forbidden"
        assert (await x.call("leave", {"room": "lobby"}))["error"]["code"] == "forbidden"
        assert (await x.call("join", {"room": "no-such-room"}))["error"]["code"] == "no_room"


async def test_room_creation_rules(stack: Stack):
    user = await register(stack.url(0))
    rid = await make_room(stack, user)
    status, body, _ = await call("POST", stack.url(1) + "/api/rooms", {"id": rid}, user.token)
    assert (status, body["error"]["code"]) == (409, "room_exists")
    for bad in ("Upper", "-lead", "a" * 65, "dm:x:y", 7, "has space"):
        status, body, _ = await call("POST", stack.url(1) + "/api/rooms", {"id": bad}, user.token)
        assert (status, body["error"]["code"]) == (400, "invalid_room"), bad
    status, body, _ = await call("GET", stack.url(1) + "/api/rooms", token=user.token)
    assert {"lobby", rid} <= {r["id"] for r in body["rooms"]}


async def test_a_retry_with_the_same_cid_stores_once(stack: Stack):
    user = await register(stack.url(0))
    rid = await make_room(stack, user)
    async with connected(stack.url(0), user.token) as a, connected(stack.url(1), user.token) as b:
        first = await a.call("send", {"room": rid, "text": "once", "cid": "same"})
        again = await b.call("send", {"room": rid, "text": "once", "cid": "same"})
        assert first["message"] == again["message"]
        page = await a.call("history", {"room": rid})
        assert [m["text"] for m in page["messages"]] == ["once"]
        assert len(await messages_of(a, 1, rid)) == 1
        other = await a.call("send", {"room": rid, "text": "twice", "cid": "other"})
        assert other["message"]["seq"] == 2 and (await messages_of(a, 1, rid))[0]["seq"] == 2


async def test_history_pages_both_ways(stack: Stack):
    user = await register(stack.url(0))
    rid = await make_room(stack, user)
    async with connected(stack.url(1), user.token) as client:
        for n in range(1, 26):
            assert (await client.call("send", {"room": rid, "text": str(n)}))["ok"]

        async def page(**cursor):
            answer = await client.call("history", {"room": rid, **cursor})
            return [m["seq"] for m in answer["messages"]], answer["has_more"]

        assert await page(limit=10) == (list(range(16, 26)), True)
        assert await page(before=16, limit=10) == (list(range(6, 16)), True)
        assert await page(before=6, limit=10) == (list(range(1, 6)), False)
        assert await page(after=0, limit=10) == (list(range(1, 11)), True)
        assert await page(after=20, limit=10) == (list(range(21, 26)), False)
        assert await page(after=5, before=9) == ([6, 7, 8], False)
        for bad in ({"limit": 0}, {"limit": 101}, {"before": -1}, {"after": "3"}):
            answer = await client.call("history", {"room": rid, **bad})
            assert answer["error"]["code"] == "invalid_request", bad


async def test_sync_after_a_reconnect_to_the_other_node_returns_exactly_what_was_missed(
    stack: Stack,
):
    reader, writer = await register(stack.url(0)), await register(stack.url(1))
    rid = await make_room(stack, writer)
    async with connected(stack.url(0), reader.token) as first:
        assert (await first.call("join", {"room": rid}))["ok"]
    async with connected(stack.url(1), writer.token) as w:
        await w.call("send", {"room": rid, "text": "seen before"})
        sent = [await w.call("send", {"room": rid, "text": f"missed {n}"}) for n in range(50)]
    async with connected(stack.url(1), reader.token) as again:
        session = await again.next("session")
        assert next(r for r in session["rooms"] if r["id"] == rid)["last_seq"] == 51
        answer = await again.call("sync", {"rooms": {rid: 1}})
        synced = answer["rooms"][rid]
        assert synced["messages"] == [ack["message"] for ack in sent]
        assert synced["has_more"] is False
        bad = await again.call("sync", {"rooms": {"not-mine-" + rid: 0}})
        assert bad["rooms"]["not-mine-" + rid]["error"]["code"] == "no_room"


async def test_rest_and_socket_paths_agree(stack: Stack):
    user = await register(stack.url(0))
    rid = await make_room(stack, user)
    async with connected(stack.url(1), user.token) as client:
        status, body, _ = await call(
            "POST",
            stack.url(0) + f"/api/rooms/{rid}/messages",
            {"text": "via rest", "cid": "r1"},
            user.token,
        )
        assert status == 201
        assert (await messages_of(client, 1, rid))[0] == body["message"]
        ack = await client.call("send", {"room": rid, "text": "via socket"})
        status, page, _ = await call(
            "GET", stack.url(0) + f"/api/rooms/{rid}/messages?after=0&limit=10", token=user.token
        )
        assert status == 200
        assert page["messages"] == [body["message"], ack["message"]]
        assert page["has_more"] is False
        status, err, _ = await call(
            "GET", stack.url(0) + f"/api/rooms/{rid}/messages?limit=500", token=user.token
        )
        assert (status, err["error"]["code"]) == (400, "invalid_request")
        status, err, _ = await call(
            "GET", stack.url(0) + "/api/rooms/nope-nope/messages", token=user.token
        )
        assert (status, err["error"]["code"]) == (404, "no_room")


async def test_a_room_created_while_connected_is_followed_at_once(stack: Stack):
    """Regression: following the room's channel from a control message must not wait on the
    listener that delivered it (same shard as the user's channel: a 5 s stall)."""
    from shardring import HashRing

    user = await register(stack.url(0))
    ring = HashRing(["shard0", "shard1", "shard2"])
    same_shard = next(
        rid
        for rid in (room_id() for _ in range(1000))
        if ring.get(f"room:{rid}") == ring.get(f"user:{user.id}")
    )
    async with connected(stack.url(1), user.token) as client:
        await client.next("session")
        status, _, _ = await call(
            "POST", stack.url(0) + "/api/rooms", {"id": same_shard}, user.token
        )
        assert status == 201
        joined = await client.next("joined", timeout=2.0)
        assert joined["room"] == same_shard
        ack = await client.call("send", {"room": same_shard, "text": "live at once"}, timeout=2.0)
        assert (await messages_of(client, 1, same_shard))[0] == ack["message"]


async def test_a_new_account_appears_in_the_lobby_live_on_every_node(stack: Stack):
    """Members lists update without polling: registering (on either node, either route)
    announces the new member to the lobby's sockets everywhere."""
    watcher = await register(stack.url(0))
    async with connected(stack.url(0), watcher.token) as w0:
        newcomer = await register(stack.url(1))
        joined = await w0.next("joined")
        while joined["user"]["id"] != newcomer.id:  # others may register meanwhile
            joined = await w0.next("joined")
        assert joined == {"room": "lobby", "user": {"id": newcomer.id, "name": newcomer.name}}
        status, body, _ = await call(
            "POST",
            stack.url(1) + "/user/",
            {"email": f"c{secrets.token_hex(4)}@example.com", "password": "compat-pass-0"},
        )
        assert status == 201, body
        joined = await w0.next("joined")
        while joined["user"]["id"] != body["id"]:
            joined = await w0.next("joined")
        assert joined["room"] == "lobby"
