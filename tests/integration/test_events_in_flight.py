"""A socket's events being answered at once are bounded (``Server.most_in_flight``): the next
one is read only when one of them is answered.  The project's Socket.IO server on a real port,
a real python-socketio client, and an answer function held until the test lets it go."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import socketio
from listening import listening

from chat.adapters import eio_tuning
from chat.adapters.sio_server import Manager, Server

MOST = 4
SENT = 12


class Held:
    """An answer function that records each event it starts and waits to be let go; ``peak``:
    the most it was answering at once."""

    def __init__(self) -> None:
        self.started: asyncio.Queue[int] = asyncio.Queue()
        self.gates: dict[int, asyncio.Event] = {}
        self.answering = self.peak = 0

    async def __call__(self, name: str, sid: str, n: int) -> dict[str, Any]:
        gate = self.gates.setdefault(n, asyncio.Event())
        self.answering += 1
        self.peak = max(self.peak, self.answering)
        self.started.put_nowait(n)
        await gate.wait()
        self.answering -= 1
        return {"ok": True, "n": n}

    def release(self, n: int) -> None:
        self.gates.setdefault(n, asyncio.Event()).set()


@asynccontextmanager
async def served(answer: Held) -> AsyncIterator[str]:
    # Short pings: a polling client's disconnect waits for its long-poll GET, which the
    # library's server ends only at the ping timeout (20 s by default; the same unpatched).
    sio = Server(async_mode="aiohttp", client_manager=Manager(), ping_interval=0.5, ping_timeout=1)
    sio.eio.async_handlers = False  # as the node runs it (chat/adapters/sio.py)
    assert eio_tuning.apply(sio.eio, compression=False)
    sio.answer = answer
    sio.most_in_flight = MOST
    async with listening(sio) as port:
        yield f"http://127.0.0.1:{port}"


async def polling_session(http: aiohttp.ClientSession, url: str) -> str:
    """A long-polling session joined to "/" by hand (raw requests, as a client batches them);
    its URL for POSTs and GETs."""
    polling = f"{url}/socket.io/?EIO=4&transport=polling"
    async with http.get(polling) as resp:
        sid = json.loads((await resp.text())[1:])["sid"]
    post = f"{polling}&sid={sid}"
    async with http.post(post, data="40") as resp:
        assert resp.status == 200
    return post


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_socket_never_has_more_events_answered_at_once_than_its_limit(transport: str):
    answer = Held()
    async with served(answer) as url:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(url, transports=[transport])
        acks: asyncio.Queue[Any] = asyncio.Queue()
        for n in range(SENT):  # all sent at once, none awaited
            await client.emit("work", n, callback=acks.put_nowait)
        running: set[int] = set()
        for _ in range(SENT):
            running.add(await asyncio.wait_for(answer.started.get(), 10))
            if len(running) == MOST:  # let the oldest go: only then may the next be read
                oldest = min(running)
                running.discard(oldest)
                answer.release(oldest)
        for n in running:
            answer.release(n)
        got = sorted([(await asyncio.wait_for(acks.get(), 10))["n"] for _ in range(SENT)])
        await client.disconnect()
    assert answer.peak == MOST  # reached, never passed (without the bound: all twelve at once)
    assert got == list(range(SENT))  # nothing refused, nothing lost


async def test_a_second_long_poll_post_while_one_is_held_closes_the_connection():
    """No client sends a POST while its last one is unanswered; held at the limit, each would
    keep its request and body: the connection is closed instead."""
    answer = Held()
    async with served(answer) as url, aiohttp.ClientSession() as http:
        post = await polling_session(http, url)
        events = "\x1e".join(f'42{n}["work",{n}]' for n in range(MOST + 1))
        held = asyncio.ensure_future(http.post(post, data=events))  # the last one waits
        for _ in range(MOST):
            await asyncio.wait_for(answer.started.get(), 10)
        second = await asyncio.wait_for(http.post(post, data='42["work",99]'), 10)
        assert second.status == 200  # answered: the connection is closed meanwhile
        second.release()
        for n in range(MOST):
            answer.release(n)
        (await held).release()
        async with http.get(post) as resp:
            assert resp.status == 400  # the session is gone
        assert answer.started.empty()  # neither the waiting event nor the other ran


async def test_a_long_poll_post_of_many_events_has_every_one_answered():
    """The official JS client sends every event emitted while a POST is under way in the
    next one: python-engineio dropped a POST of more than 16 packets (answered "ok"), and
    none of its events was ever answered."""
    answer = Held()
    for n in range(40):
        answer.release(n)
    async with served(answer) as url, aiohttp.ClientSession() as http:
        post = await polling_session(http, url)
        events = "\x1e".join(f'42{n}["work",{n}]' for n in range(40))
        async with http.post(post, data=events) as resp:
            assert resp.status == 200
        acks: set[int] = set()
        async with asyncio.timeout(15):  # without the fix: pings only, for ever
            while len(acks) < 40:  # the long-poll GETs carry the connect answer, then acks
                async with http.get(post) as resp:
                    for packet in (await resp.text()).split("\x1e"):
                        if packet.startswith("43"):
                            acks.add(json.loads(packet[packet.index("[") :])[0]["n"])
        assert acks == set(range(40))
