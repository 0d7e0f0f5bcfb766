"""Edits, deletes and reactions end to end: two node processes, real shards and cluster, real
Socket.IO clients; two users, several devices, both nodes."""

from __future__ import annotations

import asyncio

import pytest
from sioclient import Client, connected
from stack import Stack, register, start_stack
from test_accounts import call
from test_rooms import make_room


async def next_in(client: Client, room: str) -> dict:
    """The next ``message`` event of ``room`` (other rooms' traffic skipped)."""
    while True:
        message = await client.next("message")
        if message["room"] == room:
            return message


async def ok(client: Client, event: str, payload: dict) -> dict:
    ack = await client.call(event, payload)
    assert ack["ok"] is True, ack
    return ack


async def test_each_change_reaches_every_device_on_both_nodes_and_history_shows_the_state(
    stack: Stack,
):
    ann, bob = await register(stack.url(0), "Ann"), await register(stack.url(1), "Bob")
    room = await make_room(stack, ann)
    async with (
        connected(stack.url(0), ann.token) as a0,
        connected(stack.url(1), ann.token) as a1,
        connected(stack.url(1), bob.token) as b1,
        connected(stack.url(0), bob.token) as b0,
    ):
        for client in (a0, a1, b0, b1):
            await ok(client, "join", {"room": room})
        devices = (a0, a1, b0, b1)
        first = (await ok(a0, "send", {"room": room, "text": "first draft"}))["message"]
        second = (await ok(a1, "send", {"room": room, "text": "regrettable"}))["message"]
        changes = [
            (a1, "edit", {"room": room, "id": first["id"], "text": "final words"}),
            (b1, "react", {"room": room, "id": first["id"], "emoji": "👍", "on": True}),
            (a0, "react", {"room": room, "id": first["id"], "emoji": "👍", "on": True}),
            (b0, "react", {"room": room, "id": first["id"], "emoji": "🎉", "on": True}),
            (b1, "react", {"room": room, "id": first["id"], "emoji": "🎉", "on": False}),
            (a0, "delete", {"room": room, "id": second["id"]}),
        ]
        entries = [first, second]
        for client, event, payload in changes:
            entry = (await ok(client, event, payload))["message"]
            assert entry["kind"] == event and entry["seq"] == len(entries) + 1
            entries.append(entry)
        for device in devices:  # live, in order, once, on every device of both users
            assert [await next_in(device, room) for _ in entries] == entries
        edit, delete = entries[2], entries[-1]
        assert edit["text"] == "final words" and "text" not in delete

        as_bob = (await ok(b0, "history", {"room": room}))["messages"]
        assert [m["seq"] for m in as_bob] == list(range(1, 9))
        shown = as_bob[0]
        assert (shown["text"], shown["edited_ts"]) == ("final words", edit["ts"])
        assert shown["reactions"] == {"👍": 2} and shown["my_reactions"] == ["👍"]
        assert as_bob[1]["deleted"] is True and "text" not in as_bob[1]
        status, page, _ = await call(
            "GET", stack.url(1) + f"/api/rooms/{room}/messages", token=ann.token
        )
        assert status == 200 and page["messages"][0]["my_reactions"] == ["👍"]
        assert "regrettable" not in str(page) and "regrettable" not in str(as_bob)


async def test_changes_in_a_dm_reach_both_users_only(stack: Stack):
    ann, bob, eve = [await register(stack.url(i % 2)) for i in range(3)]
    async with (
        connected(stack.url(0), ann.token) as a,
        connected(stack.url(1), bob.token) as b,
        connected(stack.url(1), eve.token) as e,
    ):
        dm = (await ok(a, "dm", {"to": bob.id, "text": "psst"}))["message"]
        room = dm["room"]
        edit = (await ok(a, "edit", {"room": room, "id": dm["id"], "text": "hello"}))["message"]
        react = {"room": room, "id": dm["id"], "emoji": "👀", "on": True}
        seen = (await ok(b, "react", react))["message"]
        for client in (a, b):
            assert [await next_in(client, room) for _ in range(3)] == [dm, edit, seen]
        refused = await e.call("react", react)
        assert refused["error"]["code"] == "forbidden"
        await ok(e, "dm", {"to": eve.id, "text": "a note to myself"})  # after: a leak comes first
        assert (await e.next("message"))["text"] == "a note to myself"


async def test_every_refusal_has_its_code_and_changes_nothing(stack: Stack):
    ann, bob = await register(stack.url(0)), await register(stack.url(1))
    room = await make_room(stack, ann)
    secret = await make_room(stack, ann, private=True)
    async with connected(stack.url(0), ann.token) as a, connected(stack.url(1), bob.token) as b:
        await ok(b, "join", {"room": room})
        mine = (await ok(a, "send", {"room": room, "text": "mine"}))["message"]
        gone = (await ok(a, "send", {"room": room, "text": "gone"}))["message"]
        hidden = (await ok(a, "send", {"room": secret, "text": "hidden"}))["message"]
        await ok(a, "delete", {"room": room, "id": gone["id"]})
        for n in range(10):
            emoji = chr(0x1F600 + n)
            await ok(b, "react", {"room": room, "id": mine["id"], "emoji": emoji, "on": True})
        before = await ok(b, "history", {"room": room})
        cases = [
            (b, "edit", {"room": room, "id": mine["id"], "text": "bob's now"}, "forbidden"),
            (b, "delete", {"room": room, "id": mine["id"]}, "forbidden"),
            (b, "edit", {"room": secret, "id": hidden["id"], "text": "x"}, "forbidden"),
            (a, "edit", {"room": "r-nowhere", "id": mine["id"], "text": "x"}, "no_room"),
            (a, "edit", {"room": room, "id": "1.forged", "text": "x"}, "no_message"),
            (a, "edit", {"room": room, "id": hidden["id"], "text": "x"}, "no_message"),
            (a, "delete", {"room": room, "id": "legacy"}, "no_message"),
            (a, "edit", {"room": room, "id": gone["id"], "text": "back"}, "message_deleted"),
            (a, "delete", {"room": room, "id": gone["id"]}, "message_deleted"),
            (b, "react", {"room": room, "id": gone["id"], "emoji": "👍", "on": True},
             "message_deleted"),
            (a, "edit", {"room": room, "id": mine["id"], "text": " \u200b "}, "invalid_text"),
            (a, "edit", {"room": room, "id": mine["id"], "text": "x" * 4001}, "invalid_text"),
            (b, "react", {"room": room, "id": mine["id"], "emoji": "yes", "on": True},
             "invalid_emoji"),
            (b, "react", {"room": room, "id": mine["id"], "emoji": "🙂🙂", "on": True},
             "invalid_emoji"),
            (b, "react", {"room": room, "id": mine["id"], "emoji": "👍", "on": True},
             "too_many_reactions"),
            (a, "edit", {"room": room, "id": mine["id"]}, "invalid_request"),
        ]  # fmt: skip
        for client, event, payload, code in cases:
            ack = await client.call(event, payload)
            assert ack["ok"] is False and ack["error"]["code"] == code, (event, payload, ack)
        assert await ok(b, "history", {"room": room}) == before
        # Nothing stored (the next message takes the next seq) and nothing published: each
        # socket saw every entry once, in order, up to it.
        marker = (await ok(a, "send", {"room": room, "text": "marker"}))["message"]
        assert marker["seq"] == before["messages"][-1]["seq"] + 1
        for client in (a, b):
            seen = [await next_in(client, room) for _ in range(marker["seq"])]
            assert [m["seq"] for m in seen] == list(range(1, marker["seq"] + 1))
            assert client.pending("message") == []


async def test_rest_routes_mirror_the_events(stack: Stack):
    ann, bob = await register(stack.url(0)), await register(stack.url(1))
    room = await make_room(stack, ann)
    base = f"/api/rooms/{room}/messages"
    async with connected(stack.url(1), bob.token) as b:
        await ok(b, "join", {"room": room})
        status, body, _ = await call("POST", stack.url(0) + base, {"text": "via rest"}, ann.token)
        mid = body["message"]["id"]
        url = stack.url(1) + f"{base}/{mid}"
        status, body, _ = await call("PATCH", url, {"text": "edited", "cid": "p1"}, ann.token)
        assert status == 200 and body["message"]["kind"] == "edit"
        again = await call("PATCH", url, {"text": "other", "cid": "p1"}, ann.token)
        assert again[:2] == (200, body)  # the retry answers the first edit
        react = {"emoji": "🔥", "on": True}
        status, reacted, _ = await call("POST", url + "/reactions", react, bob.token)
        assert status == 200 and reacted["message"]["emoji"] == "🔥"
        status, same, _ = await call("POST", url + "/reactions", react, bob.token)
        assert (status, same) == (200, {"message": None})
        refusals = [
            ("PATCH", url, {"text": "x"}, bob.token, 403, "forbidden"),
            ("DELETE", url, None, bob.token, 403, "forbidden"),
            ("PATCH", url, {"text": ""}, ann.token, 400, "invalid_text"),
            ("POST", url + "/reactions", {"emoji": "no", "on": True}, bob.token, 400,
             "invalid_emoji"),
            ("PATCH", stack.url(0) + f"{base}/9.x", {"text": "x"}, ann.token, 404, "no_message"),
            ("PATCH", url, {"text": 5}, ann.token, 400, "invalid_request"),
            # The path's ids are checked as the events' fields (not looked up as no_message).
            ("PATCH", stack.url(0) + f"{base}/{'9' * 129}", {"text": "x"}, ann.token, 400,
             "invalid_request"),
            ("DELETE", stack.url(1) + f"{base}/{'9' * 129}", None, ann.token, 400,
             "invalid_request"),
        ]  # fmt: skip
        for method, where, payload, token, status_code, code in refusals:
            status, body, _ = await call(method, where, payload, token)
            assert (status, body["error"]["code"]) == (status_code, code), (method, payload)
        status, deleted, _ = await call("DELETE", url, None, ann.token)
        assert status == 200 and deleted["message"]["kind"] == "delete"
        status, body, _ = await call("PATCH", url, {"text": "back"}, ann.token)
        assert (status, body["error"]["code"]) == (409, "message_deleted")
        live = [await next_in(b, room) for _ in range(4)]
        assert [m.get("kind") for m in live] == [None, "edit", "react", "delete"]
        status, page, _ = await call("GET", stack.url(0) + base, token=bob.token)
        assert page["messages"][0]["deleted"] is True and "text" not in page["messages"][0]
        assert "text" not in page["messages"][1]  # the edit of a deleted message


async def test_a_retry_with_the_same_cid_stores_once(stack: Stack):
    ann = await register(stack.url(0))
    room = await make_room(stack, ann)
    async with connected(stack.url(0), ann.token) as a, connected(stack.url(1), ann.token) as a1:
        await ok(a, "join", {"room": room})
        await ok(a1, "join", {"room": room})
        mid = (await ok(a, "send", {"room": room, "text": "x"}))["message"]["id"]
        for event, payload in (
            ("edit", {"room": room, "id": mid, "text": "y", "cid": "k1"}),
            ("react", {"room": room, "id": mid, "emoji": "✅", "on": True, "cid": "k2"}),
            ("delete", {"room": room, "id": mid, "cid": "k3"}),
        ):
            first = await ok(a, event, payload)
            again = await ok(a1, event, payload)  # from the other node, as after a reconnect
            assert again == first
        history = (await ok(a1, "history", {"room": room}))["messages"]
        assert [m["seq"] for m in history] == [1, 2, 3, 4]
        assert [(await next_in(a1, room))["seq"] for _ in range(4)] == [1, 2, 3, 4]
        marker = (await ok(a, "send", {"room": room, "text": "end"}))["message"]
        assert (await next_in(a1, room)) == marker  # the republished copies were dropped


@pytest.mark.slow
async def test_the_edit_window_closes(redis_fleet, tmp_path, jwt_secret):
    with start_stack(redis_fleet, tmp_path, jwt_secret, nodes=1, edit_window_s="1") as stack:
        ann = await register(stack.url(0))
        async with connected(stack.url(0), ann.token) as a:
            sent = (await ok(a, "dm", {"to": ann.id, "text": "now"}))["message"]
            await ok(a, "edit", {"room": sent["room"], "id": sent["id"], "text": "in time"})
            await asyncio.sleep(1.1)  # the window is time itself: nothing to await instead
            late = {"room": sent["room"], "id": sent["id"], "text": "too late"}
            ack = await a.call("edit", late)
            assert ack["error"]["code"] == "edit_window_closed"
            history = (await ok(a, "history", {"room": sent["room"]}))["messages"]
            assert history[0]["text"] == "in time" and len(history) == 2
