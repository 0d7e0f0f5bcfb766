"""Names the Socket.IO library keeps for itself, sent by a client as ordinary events.

A raw Engine.IO websocket speaks the packets an attacker would write by hand
(``42["disconnect",{}]``); the official clients refuse to emit these names at all.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from stack import Stack, register

TIMEOUT = 10.0


class RawSocket:
    """Socket.IO v5 over one Engine.IO v4 websocket, packets as text."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.acks: dict[int, Any] = {}
        self.backlog: list[tuple[str, Any]] = []  # events that arrived while awaiting an ack
        self._next_id = 0

    async def packet(self) -> str:
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), TIMEOUT)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            if msg.data == "2":  # Engine.IO ping: answer, or the server drops us
                await self.ws.send_str("3")
                continue
            return str(msg.data)

    async def open(self, token: str) -> None:
        assert (await self.packet()).startswith("0")  # Engine.IO open
        await self.ws.send_str("40" + json.dumps({"token": token}))
        assert (await self.packet()).startswith("40{")  # Socket.IO connect
        assert (await self.event("session"))["user"]

    async def event(self, name: str) -> Any:
        for i, (event, data) in enumerate(self.backlog):
            if event == name:
                del self.backlog[i]
                return data
        while True:
            text = await self.packet()
            if text.startswith("42"):
                event, data = json.loads(text[2:])
                if event == name:
                    return data

    async def call(self, *args: Any) -> Any:
        """Send an EVENT with an ack id; return the ack's first argument."""
        self._next_id += 1
        ack_id = self._next_id
        await self.ws.send_str(f"42{ack_id}" + json.dumps(list(args)))
        while True:
            text = await self.packet()
            if text.startswith(f"43{ack_id}["):
                return json.loads(text[len(f"43{ack_id}") :])[0]
            if text.startswith("42"):
                event, data = json.loads(text[2:])
                self.backlog.append((event, data))
            assert not text.startswith(("41", "1")), f"the server closed the socket: {text}"


async def _channels(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url + "/readyz") as resp:
        detail = await resp.json()
    return sum(shard["channels"] for shard in detail["shards"].values())


@pytest.mark.parametrize(
    "name", ["connect", "disconnect", "*", "connect_error", "disconnecting", "message"]
)
async def test_reserved_names_are_refused_and_change_nothing(stack: Stack, name: str):
    user = await register(stack.url(0))
    url = stack.url(0)
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url + "/socket.io/?EIO=4&transport=websocket") as ws,
    ):
        sock = RawSocket(ws)
        await sock.open(user.token)
        before = await _channels(http, url)
        # connect with a token: what would re-run the handshake and subscribe everything again
        ack = await sock.call(name, {}, {"token": user.token})
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_request", ack
        assert await _channels(http, url) == before
        # the socket is whole: it still sends, and receives its own message
        sent = await sock.call("send", {"room": "lobby", "text": f"after {name}"})
        assert sent["ok"] is True, sent
        got = await sock.event("message")
        while got["id"] != sent["message"]["id"]:
            got = await sock.event("message")


async def test_an_event_name_that_is_not_a_string_is_refused(stack: Stack):
    user = await register(stack.url(1))
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(stack.url(1) + "/socket.io/?EIO=4&transport=websocket") as ws,
    ):
        sock = RawSocket(ws)
        await sock.open(user.token)
        for name in (1, None, ["send"], {"a": 1}):
            ack = await sock.call(name, {"room": "lobby", "text": "x"})
            assert ack["ok"] is False and ack["error"]["code"] == "invalid_request", ack
        assert (await sock.call("members", {"room": "lobby"}))["ok"] is True


async def test_the_senders_copy_of_a_dm_comes_after_its_ack(stack: Stack):
    """Contract: the sending socket gets the message "after or alongside its ack".  Both users
    on one node and a new pair: the copy is delivered on this node without Redis, and the
    pair's first message also lists the DM for both (the path with the most waiting)."""
    alice, bob = await register(stack.url(0)), await register(stack.url(0))
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(stack.url(0) + "/socket.io/?EIO=4&transport=websocket") as ws_a,
        http.ws_connect(stack.url(0) + "/socket.io/?EIO=4&transport=websocket") as ws_b,
    ):
        a, b = RawSocket(ws_a), RawSocket(ws_b)
        await a.open(alice.token)
        await b.open(bob.token)
        for text in ("first of the pair", "second"):
            ack = await a.call("dm", {"to": bob.id, "text": text})
            assert ack["ok"] is True, ack
            early = [d for e, d in a.backlog if e == "message" and d["id"] == ack["message"]["id"]]
            assert early == [], "the copy overtook the ack"
            assert (await a.event("message"))["id"] == ack["message"]["id"]
            assert (await b.event("message"))["id"] == ack["message"]["id"]
