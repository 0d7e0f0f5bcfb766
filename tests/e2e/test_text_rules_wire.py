"""The text and name rules (unit/test_text_rules.py) hold over the wire: a node refuses what
they refuse, on the socket and on REST."""

from __future__ import annotations

import aiohttp
from sioclient import connected
from stack import new_user_id, register


async def test_invisible_only_texts_and_names_are_refused_over_the_wire(stack):
    """A zero-width space alone would show as a blank line, a bidi override as a name that
    reverses what follows it: refused on the socket and on REST, on either node."""
    ann = await register(stack.url(0), name="Ann")
    async with connected(stack.url(1), ann.token) as client:
        await client.next("session")
        for text in ("\u200b", "\u200b\ufeff \u2060", "\u202e", "\U000e0041\U000e0042"):
            ack = await client.call("send", {"room": "lobby", "text": text})
            assert ack["error"]["code"] == "invalid_text", ack
            ack = await client.call("dm", {"to": ann.id, "text": text})
            assert ack["error"]["code"] == "invalid_text", ack
        for name in ("\u202e", "\u2067\u2069", "\u200b\u3164", "\ufe0f"):
            ack = await client.call("rename", {"name": name})
            assert ack["error"]["code"] == "invalid_name", ack
        ack = await client.call("rename", {"name": "\u202enimdA\u202c ecilA"})
        assert ack["user"]["name"] == "nimdA ecilA"  # shown as typed, never reversed
        ack = await client.call("send", {"room": "lobby", "text": "pay \u202e0001"})
        assert ack["message"]["text"] == "pay 0001"
        # Lone surrogates (JavaScript strings may hold them; JSON carries them as "\ud800"
        # escapes): removed, and the event answered (it was dropped unanswered).
        ack = await client.call("send", {"room": "lobby", "text": "a\ud800b\udc00"})
        assert ack["message"]["text"] == "ab"
        ack = await client.call("history", {"room": "lo\ud800bby", "limit": 1})
        assert ack["ok"], ack
        ack = await client.call("dm", {"to": ann.id + "\udfff", "text": "x"})
        assert ack["ok"], ack
    async with aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {ann.token}"}
        body = {"text": "\u200b"}
        async with http.post(
            f"{stack.url(0)}/api/rooms/lobby/messages", json=body, headers=auth
        ) as r:
            assert (r.status, (await r.json())["error"]["code"]) == (400, "invalid_text")
        room = {"id": new_user_id("r").lower(), "name": "\u2066\u3164"}
        async with http.post(f"{stack.url(0)}/api/rooms", json=room, headers=auth) as r:
            assert (r.status, (await r.json())["error"]["code"]) == (400, "invalid_name")
        body = {"email": f"{new_user_id('t')}@example.com", "password": "a fine passphrase"}
        async with http.post(f"{stack.url(1)}/api/register", json={**body, "name": "\u202d"}) as r:
            assert (r.status, (await r.json())["error"]["code"]) == (400, "invalid_name")
