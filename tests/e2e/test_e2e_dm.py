"""Walking skeleton end to end: two node processes, real shards, python-socketio clients."""

from __future__ import annotations

import json
import time
import urllib.request

import jwt
import pytest
import socketio
from sioclient import Client, connected
from stack import Stack, register


async def test_dm_crosses_nodes_and_reaches_the_senders_socket(stack: Stack):
    alice_user = await register(stack.url(0), "Alice")
    bob_user = await register(stack.url(1), "Bob")
    alice, bob = alice_user.id, bob_user.id
    async with (
        connected(stack.url(0), alice_user.token) as a,
        connected(stack.url(1), bob_user.token) as b,
    ):
        session = await b.next("session")
        assert session["user"] == {"id": bob, "name": "Bob", "email": bob_user.email}

        ack = await a.call("dm", {"to": bob, "text": "hello across nodes", "cid": "c-1"})

        assert ack["ok"] is True
        sent = ack["message"]
        assert sent["room"] == "dm:" + ":".join(sorted((alice, bob)))
        assert sent["from"] == {"id": alice, "name": "Alice"}
        assert sent["text"] == "hello across nodes" and sent["cid"] == "c-1"
        assert isinstance(sent["seq"], int) and abs(sent["ts"] - time.time() * 1000) < 60_000
        assert await b.next("message") == sent
        assert await a.next("message") == sent  # the sending socket gets it too


async def test_every_socket_of_the_recipient_gets_it_on_every_node(stack: Stack):
    alice, bob, carol = [await register(stack.url(0)) for _ in range(3)]
    async with (
        connected(stack.url(0), alice.token) as a,
        connected(stack.url(0), bob.token) as b0,
        connected(stack.url(1), bob.token) as b1,
        connected(stack.url(1), carol.token) as c,
    ):
        ack = await a.call("dm", {"to": bob.id, "text": "to both of your devices"})
        assert ack["ok"] is True
        assert (await b0.next("message"))["id"] == ack["message"]["id"]
        assert (await b1.next("message"))["id"] == ack["message"]["id"]
        # carol's socket shares node1 with bob's: her own note to self, published after bob
        # got alice's message, is the first message she sees (a leak would come before it).
        await c.call("dm", {"to": carol.id, "text": "ping myself"})
        assert (await c.next("message"))["text"] == "ping myself"
        assert c.pending("message") == []


async def test_a_second_dm_keeps_order_and_numbering(stack: Stack):
    alice, bob = await register(stack.url(0)), await register(stack.url(1))
    async with (
        connected(stack.url(0), alice.token) as a,
        connected(stack.url(1), bob.token) as b,
    ):
        acks = [await a.call("dm", {"to": bob.id, "text": f"m{i}"}) for i in range(5)]
        got = [await b.next("message") for _ in range(5)]
        assert [m["text"] for m in got] == [f"m{i}" for i in range(5)]
        assert [m["seq"] for m in got] == [ack["message"]["seq"] for ack in acks]
        assert [m["seq"] for m in got] == list(range(got[0]["seq"], got[0]["seq"] + 5))


def _token(secret: str, **claims):
    now = int(time.time())
    payload = {"sub": "x", "iat": now, "exp": now + 60, "jti": "j", "iss": "chat", **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.mark.parametrize(
    "make_token",
    [
        lambda secret: None,
        lambda secret: "not-a-token",
        lambda secret: _token(secret, exp=int(time.time()) - 3600),
        lambda secret: _token("another-secret-of-enough-length-000"),
        lambda secret: _token(secret, iss="someone-else"),
        lambda secret: _token(secret, jti=None),
        lambda secret: jwt.encode({"sub": "x", "iss": "chat"}, None, algorithm="none"),
    ],
    ids=["missing", "garbage", "expired", "other-key", "wrong-issuer", "no-jti", "alg-none"],
)
async def test_bad_tokens_are_refused_with_unauthorized(stack: Stack, make_token):
    client = Client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(stack.url(0), make_token(stack.secret))
    assert client.connect_error["code"] == "unauthorized"
    assert client.connect_error["data"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("event", "args"),
    [
        ("dm", ({"to": "someone"},)),
        ("dm", ({"to": 42, "text": "x"},)),
        ("dm", ({"to": "b", "text": " \x00 "},)),
        ("dm", ("just a string",)),
        ("dm", (({"to": "b", "text": "x"}, "extra"),)),
        ("no-such-event", ({},)),
    ],
    ids=["missing-text", "wrong-type", "empty-text", "not-an-object", "two-args", "unknown-event"],
)
async def test_bad_payloads_get_an_error_ack_and_the_socket_stays_usable(stack: Stack, event, args):
    user = await register(stack.url(0))
    me = user.id
    async with connected(stack.url(0), user.token) as client:
        ack = await client.call(event, *args)
        assert ack["ok"] is False
        assert ack["error"]["code"] in ("invalid_request", "invalid_text")
        assert ack["error"]["message"]
        assert (await client.call("dm", {"to": me, "text": "still here"}))["ok"] is True


def test_nodes_report_ready_with_every_shard(stack: Stack):
    for node in stack.nodes:
        with urllib.request.urlopen(node.url + "/readyz") as resp:  # noqa: S310
            body = json.load(resp)
        assert body["ready"] is True
        assert set(body["shards"]) == {"shard0", "shard1", "shard2"}
        assert all(s["connected"] for s in body["shards"].values())
