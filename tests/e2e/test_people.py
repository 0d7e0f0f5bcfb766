"""Blocking, user search and account deletion on two node processes (the rules over the fakes:
unit/test_people_rules.py; the store contract: integration/test_people_contract.py)."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from pathlib import Path

from sioclient import connected
from stack import Stack, register
from test_accounts import call
from test_rooms import room_id

from devstack.nodes import node_env

ROOT = Path(__file__).resolve().parents[2]


async def test_a_block_refuses_dms_both_ways_across_nodes(stack: Stack):
    alice, bob = await register(stack.url(0), "Alice"), await register(stack.url(1), "Bob")
    async with (
        connected(stack.url(0), alice.token) as a,
        connected(stack.url(1), bob.token) as b,
    ):
        assert (await a.call("dm", {"to": bob.id, "text": "before"}))["ok"]
        assert (await b.next("message"))["text"] == "before"
        # By REST on the other node: the same store of record.
        status, _, _ = await call(
            "PUT", f"{stack.url(1)}/api/me/blocks/{bob.id}", token=alice.token
        )
        assert status == 204
        for sender, to in ((a, bob.id), (b, alice.id)):
            refused = await sender.call("dm", {"to": to, "text": "blocked?"})
            assert refused["error"] == {"code": "forbidden", "message": "not allowed"}
        status, body, _ = await call(
            "POST", f"{stack.url(0)}/api/rooms/dm:{':'.join(sorted((alice.id, bob.id)))}/messages",
            {"text": "by rest"}, token=bob.token,
        )  # fmt: skip
        assert status == 403 and body["error"]["code"] == "forbidden"
        listed = await a.call("blocks", {})
        assert listed == {"ok": True, "users": [{"id": bob.id, "name": "Bob"}]}
        status, body, _ = await call("GET", f"{stack.url(1)}/api/me/blocks", token=alice.token)
        assert (status, body) == (200, {"users": [{"id": bob.id, "name": "Bob"}]})
        assert (await a.call("unblock", {"user": bob.id}))["ok"]
        assert (await b.call("dm", {"to": alice.id, "text": "after"}))["ok"]
        assert (await a.next("message"))["text"] in ("before", "after")
        status, _, _ = await call(
            "DELETE", f"{stack.url(0)}/api/me/blocks/{bob.id}", token=alice.token
        )
        assert status == 204
        for bad in ("a.b", "x" * 65, f"{bob.id}%0A"):  # as the event: a shape error
            for method in ("PUT", "DELETE"):
                status, body, _ = await call(
                    method, f"{stack.url(1)}/api/me/blocks/{bad}", token=alice.token
                )
                assert (status, body["error"]["code"]) == (400, "invalid_request"), (method, bad)


async def test_a_block_closes_the_dm_to_edits_and_reactions_but_not_to_deletes(stack: Stack):
    alice, bob = await register(stack.url(0), "Alice"), await register(stack.url(1), "Bob")
    async with (
        connected(stack.url(0), alice.token) as a,
        connected(stack.url(1), bob.token) as b,
    ):
        mine = (await a.call("dm", {"to": bob.id, "text": "mine"}))["message"]
        assert (await b.next("message"))["id"] == mine["id"]
        room = mine["room"]
        assert (await a.call("block", {"user": bob.id}))["ok"]
        for client, event, payload in (
            (b, "react", {"room": room, "id": mine["id"], "emoji": "👍", "on": True}),
            (a, "edit", {"room": room, "id": mine["id"], "text": "edited"}),
        ):
            refused = await client.call(event, payload)
            assert refused["error"] == {"code": "forbidden", "message": "not allowed"}
        deleted = await a.call("delete", {"room": room, "id": mine["id"]})
        assert deleted["ok"] and deleted["message"]["kind"] == "delete"
        # Bob's next message event is the delete: the refused changes reached nobody.
        assert (await b.next("message"))["id"] == deleted["message"]["id"]


async def test_the_blocker_receives_no_typing_from_the_blocked_user(stack: Stack):
    alice, bob, carol = [await register(stack.url(0), n) for n in ("Alice", "Bob", "Carol")]
    room = room_id()
    status, _, _ = await call("POST", f"{stack.url(0)}/api/rooms", {"id": room}, token=carol.token)
    assert status == 201
    async with (
        connected(stack.url(0), alice.token) as a,
        connected(stack.url(1), bob.token) as b,
        connected(stack.url(0), carol.token) as c,
    ):
        for client in (a, b):
            assert (await client.call("join", {"room": room}))["ok"]
        assert (await a.call("block", {"user": bob.id}))["ok"]
        assert (await b.call("typing", {"room": room}))["sent"]
        assert (await c.next("typing"))["user"]["id"] == bob.id  # carol, on alice's node
        # alice hears a later message of carol's, never bob's typing before it.
        assert (await c.call("send", {"room": room, "text": "marker"}))["ok"]
        while (await a.next("message"))["text"] != "marker":
            pass
        assert a.pending("typing") == []
        # The block is alice's view only: bob still sees her typing.
        assert (await a.call("typing", {"room": room}))["sent"]
        assert (await b.next("typing"))["user"]["id"] == alice.id
        assert (await a.call("unblock", {"user": bob.id}))["ok"]
        # (In their DM: the throttle is per room, so no wait for the room's to pass.)
        dm = "dm:" + ":".join(sorted((alice.id, bob.id)))
        assert (await b.call("typing", {"room": dm}))["sent"]
        assert (await a.next("typing")) == {"room": dm, "user": {"id": bob.id, "name": "Bob"}}


async def test_search_pages_names_without_emails_and_never_deleted_users(stack: Stack):
    tag = "Zq" + secrets.token_hex(3)
    users = [await register(stack.url(i % 2), f"{tag} {i}") for i in range(5)]
    async with connected(stack.url(0), users[0].token) as a:
        first = await a.call("users", {"prefix": tag.lower(), "limit": 3})
        assert first["ok"] and first["has_more"] is True
        assert first["users"] == [{"id": u.id, "name": u.name} for u in users[:3]]
        status, body, _ = await call(
            "GET", f"{stack.url(1)}/api/users?prefix={tag.upper()}&offset=3&limit=3",
            token=users[1].token,
        )  # fmt: skip
        assert status == 200 and body["has_more"] is False
        assert body["users"] == [{"id": u.id, "name": u.name} for u in users[3:]]
        assert all(set(u) == {"id", "name"} for u in first["users"] + body["users"])
        status, body, _ = await call(
            "GET", f"{stack.url(0)}/api/users?prefix=", token=users[0].token
        )
        assert status == 400 and body["error"]["code"] == "invalid_request"
        status, _, _ = await call(
            "DELETE",
            f"{stack.url(1)}/api/me",
            {"password": users[2].password},
            token=users[2].token,
        )
        assert status == 204
        found = await a.call("users", {"prefix": tag, "limit": 50})
        assert [u["id"] for u in found["users"]] == [u.id for u in users if u is not users[2]]


async def test_deleting_an_account_closes_its_sockets_everywhere_and_frees_the_email(stack: Stack):
    gone, friend = await register(stack.url(0), "Gone"), await register(stack.url(1), "Friend")
    room = room_id()
    status, _, _ = await call("POST", f"{stack.url(0)}/api/rooms", {"id": room}, token=friend.token)
    assert status == 201
    async with (
        connected(stack.url(0), gone.token) as g0,
        connected(stack.url(1), gone.token) as g1,
        connected(stack.url(1), friend.token) as f,
    ):
        assert (await g0.call("join", {"room": room}))["ok"]
        assert (await f.call("join", {"room": room}))["ok"]
        sent = await g0.call("send", {"room": room, "text": "last words"})
        assert sent["ok"]
        assert (await g0.call("dm", {"to": friend.id, "text": "psst"}))["ok"]
        status, body, _ = await call(
            "DELETE", f"{stack.url(1)}/api/me", {"password": "wrong-password"}, token=gone.token
        )
        assert status == 401 and body["error"]["code"] == "invalid_credentials"
        status, _, resp = await call(
            "DELETE", f"{stack.url(1)}/api/me", {"password": gone.password}, token=gone.token
        )
        assert status == 204
        assert "chat_token" in resp.cookies and not resp.cookies["chat_token"].value
        for socket in (g0, g1):
            assert (await socket.next("session_end"))["code"] == "token_revoked"
            await asyncio.wait_for(socket.disconnected.wait(), 10)
        # The lobby's members are told too (everyone is in it).
        shown_left = {(await f.next("left"))["room"] for _ in range(2)}
        assert shown_left == {room, "lobby"}
        page = await f.call("history", {"room": room})
        shown = next(m for m in page["messages"] if m["id"] == sent["message"]["id"])
        assert shown["from"] == {"id": gone.id, "name": "Deleted user"}
        members = await f.call("members", {"room": room})
        assert [m["id"] for m in members["members"]] == [friend.id]
        refused = await f.call("dm", {"to": gone.id, "text": "are you there?"})
        assert refused["error"]["code"] == "no_user"
        dm = "dm:" + ":".join(sorted((gone.id, friend.id)))
        page = await f.call("history", {"room": dm})  # still the friend's to read
        assert [m["from"]["name"] for m in page["messages"]] == ["Deleted user"]
        pair = await f.call("members", {"room": dm})
        assert {m["id"]: m["name"] for m in pair["members"]}[gone.id] == "Deleted user"
        status, body, _ = await call("GET", f"{stack.url(0)}/api/rooms", token=friend.token)
        assert {r["id"]: r["name"] for r in body["rooms"]}[dm] == "Deleted user"
    status, body, _ = await call("GET", f"{stack.url(0)}/api/users/{gone.id}", token=friend.token)
    assert status == 404 and body["error"]["code"] == "no_user"
    status, _, _ = await call("GET", f"{stack.url(0)}/api/me", token=gone.token)
    assert status == 401
    status, _, _ = await call(
        "POST", f"{stack.url(0)}/api/login", {"email": gone.email, "password": gone.password}
    )
    assert status == 401
    status, body, _ = await call(
        "POST", f"{stack.url(1)}/api/register", {"email": gone.email, "password": "A-new-pass-2"}
    )
    assert status == 201 and body["user"]["id"] != gone.id


async def chat_users(stack: Stack, *args: str) -> tuple[int, str, str]:
    env = node_env(stack.fleet.shards_env, stack.fleet.cluster_env, stack.secret,
                   **stack.fleet.node_options())  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chat", "users", *args, env={**os.environ, **env}, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_operator_deletes_an_account_by_email(stack: Stack):
    user, heir = await register(stack.url(0), "Operated"), await register(stack.url(1), "Heir")
    room = room_id()
    status, _, _ = await call("POST", f"{stack.url(0)}/api/rooms", {"id": room}, token=user.token)
    assert status == 201
    async with (
        connected(stack.url(1), user.token) as s,
        connected(stack.url(0), heir.token) as h,
    ):
        assert (await h.call("join", {"room": room}))["ok"]
        code, out, err = await chat_users(stack, "delete", user.email.upper())
        assert code == 0, err
        assert user.id in out
        assert (await s.next("session_end"))["code"] == "token_revoked"
        await asyncio.wait_for(s.disconnected.wait(), 10)
        # The room is not left without an owner: its only other member has it now.
        entry = await h.next("message")
        assert (entry["action"], entry["user"]["id"]) == ("transfer", heir.id)
        assert entry["from"] == {"id": user.id, "name": "Deleted user"}
        status, body, _ = await call("GET", f"{stack.url(1)}/api/rooms", token=heir.token)
        assert {r["id"]: r.get("role") for r in body["rooms"]}[room] == "owner"
    assert (await chat_users(stack, "delete", user.email))[0] == 2  # no such user now
    assert (await chat_users(stack, "delete", user.id))[0] == 0  # finishing it again is fine
    code, out, _ = await chat_users(stack, "reindex")
    assert code == 0 and out.startswith("indexed ")
