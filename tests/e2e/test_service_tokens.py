"""Service tokens end to end: made with the operator's CLI (``chat tokens``), used by bots on
real nodes like a user's token, revoked at once everywhere, stored as a hash only."""

from __future__ import annotations

import hashlib
import secrets
import time

import pytest
import socketio
from redis_fixtures import access
from sioclient import Client, connected
from stack import Stack, chat_command, new_user_id, register, service_token
from test_accounts import call

from chat import keys
from chat.adapters.cluster.client import Cluster


async def cluster_of(stack: Stack) -> Cluster:
    fleet = stack.fleet
    seeds = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in fleet.cluster_nodes)]
    cluster = Cluster(seeds, node_id="test", access=access(fleet))
    await cluster.start(10)
    return cluster


async def test_a_bot_connects_on_either_node_and_talks_like_a_user(stack: Stack):
    name = new_user_id("bot")
    token, _, bot_id = await service_token(stack, name)
    assert token.startswith("svc_")
    user = await register(stack.url(1))
    async with (
        connected(stack.url(0), token) as bot,
        connected(stack.url(1), token) as bot_elsewhere,
        connected(stack.url(1), user.token) as person,
    ):
        session = await bot.next("session")
        assert session["user"] == {"id": bot_id, "email": "", "name": name, "bot": True}
        await bot_elsewhere.next("session")
        await person.next("session")
        ack = await person.call("dm", {"to": bot_id, "text": "hello bot"})
        assert ack["ok"], ack
        for socket in (bot, bot_elsewhere):  # both of the bot's sockets, on both nodes
            message = await socket.next("message")
            assert (message["from"]["id"], message["text"]) == (user.id, "hello bot")
        ack = await bot.call("dm", {"to": user.id, "text": "hello human", "cid": "c1"})
        assert ack["ok"], ack
        message = await person.next("message")
        while message["from"]["id"] != bot_id:
            message = await person.next("message")
        assert (message["text"], message["from"]["name"]) == ("hello human", name)
    status, body, _ = await call("GET", stack.url(1) + "/api/me", token=token)
    assert status == 200 and body["user"] == {"id": bot_id, "email": "", "name": name, "bot": True}
    status, body, _ = await call("GET", stack.url(0) + f"/api/users/{bot_id}", token=user.token)
    assert status == 200 and body["user"]["bot"] is True


async def test_a_service_token_is_refused_in_the_cookie(stack: Stack):
    token, _, _ = await service_token(stack, new_user_id("bot"))
    status, body, _ = await call("GET", stack.url(0) + "/api/me", Cookie=f"chat_token={token}")
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    refused = Client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(stack.url(1), None, headers={"Cookie": f"chat_token={token}"})
    assert refused.connect_error["code"] == "unauthorized"


async def test_a_revoked_token_is_refused_at_once_and_its_sockets_closed(stack: Stack):
    token, ident, bot_id = await service_token(stack, new_user_id("bot"))
    async with connected(stack.url(0), token) as here, connected(stack.url(1), token) as there:
        await here.next("session")
        await there.next("session")
        started = time.monotonic()
        code, out, err = await chat_command(stack, "tokens", "revoke", ident)
        assert code == 0, out + err
        assert out.startswith(f"revoked {ident} ") and "revoked 20" in out
        for socket in (here, there):
            assert (await socket.next("session_end", timeout=2.0))["code"] == "token_revoked"
            assert await socket.next("__disconnect__", timeout=2.0) == "server disconnect"
        assert time.monotonic() - started < 10.0  # the CLI's own start-up included
    for node in (0, 1):
        refused = Client()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await refused.connect(stack.url(node), token)
        assert (refused.connect_error["code"], refused.connect_error["reason"]) == (
            "unauthorized",
            "token_revoked",
        )
        status, body, _ = await call("GET", stack.url(node) + "/api/me", token=token)
        assert (status, body["error"]["code"]) == (401, "unauthorized")
    code, out, _ = await chat_command(stack, "tokens", "list")
    assert code == 0
    line = next(row for row in out.splitlines() if row.startswith(ident))
    assert f"user={bot_id}" in line and " revoked " in line
    code, _, err = await chat_command(stack, "tokens", "revoke", "0" * 16)
    assert code == 2 and "no such service token" in err


async def test_list_shows_no_secret_and_the_store_keeps_only_a_hash(stack: Stack):
    name = new_user_id("bot")
    token, ident, bot_id = await service_token(stack, name, "bot", "admin")
    secret = token.split("_", 2)[2]
    code, out, err = await chat_command(stack, "tokens", "list")
    assert code == 0, err
    line = next(row for row in out.splitlines() if row.startswith(ident))
    assert f"name='{name}'" in line and "scopes=bot,admin" in line and line.endswith(" active")
    assert secret not in out and "hash" not in out
    cluster = await cluster_of(stack)
    try:
        key = keys.service_tokens_key()
        raw = (await cluster.send(key, "HGET", key, ident)).decode()
        admins = keys.service_admins_key()
        assert await cluster.send(admins, "SISMEMBER", admins, bot_id)
    finally:
        await cluster.stop()
    assert secret not in raw and token not in raw
    assert f'"hash":"{hashlib.sha256(secret.encode()).hexdigest()}"' in raw


async def test_an_admin_bot_creates_a_room_and_posts_via_rest(stack: Stack):
    token, _, bot_id = await service_token(stack, new_user_id("ops"), "admin")
    room = new_user_id("ops-room")
    body = {"id": room, "name": "Announcements"}
    status, answer, _ = await call("POST", stack.url(0) + "/api/rooms", body, token=token)
    assert status == 201, answer
    assert answer["room"]["id"] == room
    text = f"maintenance at {secrets.token_hex(2)}"
    status, answer, _ = await call(
        "POST", stack.url(1) + f"/api/rooms/{room}/messages", {"text": text}, token=token
    )
    assert status == 201, answer
    assert answer["message"]["from"]["id"] == bot_id
    user = await register(stack.url(0))
    async with connected(stack.url(1), user.token) as person:
        await person.next("session")
        assert (await person.call("join", {"room": room}))["ok"]
        page = await person.call("history", {"room": room, "limit": 10})
        assert [m["text"] for m in page["messages"]] == [text]
    status, answer, _ = await call("POST", stack.url(0) + "/api/logout", token=token)
    assert (status, answer["error"]["code"]) == (403, "forbidden")


async def test_a_refused_create_exits_2_and_makes_nothing(stack: Stack):
    code, before, _ = await chat_command(stack, "tokens", "list")
    assert code == 0
    for argv, says in (
        (["--name", "  "], "name must have a visible character"),
        (["--name", "Bot", "--scope", "root"], "invalid choice"),
        ([], "--name"),
    ):
        code, out, err = await chat_command(stack, "tokens", "create", *argv)
        assert (code, out) == (2, ""), err
        assert says in err
    code, after, _ = await chat_command(stack, "tokens", "list")
    assert code == 0 and after == before
