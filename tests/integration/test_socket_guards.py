"""What a client cannot make a node hold: binary packets (whose attachments python-socketio
would keep until as many arrived as the packet claims) close the connection; an Engine.IO
connection that does not join "/" in time is closed.  The project's Socket.IO server on a
real port, raw websocket clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from listening import listening
from socketio.exceptions import ConnectionRefusedError

from chat.adapters import eio_tuning
from chat.adapters.sio_server import Manager, Server


@asynccontextmanager
async def served(
    ping_interval: float = 25, **attributes: Any
) -> AsyncIterator[tuple[Server, str, list[Any]]]:
    """The server (its ``attributes`` set), a websocket URL, and what it answered."""
    sio = Server(async_mode="aiohttp", client_manager=Manager(), ping_interval=ping_interval)
    sio.eio.async_handlers = False
    assert eio_tuning.apply(sio.eio, compression=False)
    for name, value in attributes.items():
        setattr(sio, name, value)
    answered: list[Any] = []

    async def answer(*args: Any) -> dict[str, Any]:
        answered.append(args)
        return {"ok": True}

    @sio.event  # type: ignore[misc]
    async def connect(sid: str, environ: Any, auth: Any = None) -> None:
        if auth != {"token": "good"}:
            raise ConnectionRefusedError({"code": "unauthorized", "message": "no"})

    sio.answer = answer
    async with listening(sio) as port:
        yield sio, f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", answered


@asynccontextmanager
async def websocket(url: str) -> AsyncIterator[Any]:
    """A raw Engine.IO websocket, past its OPEN packet."""
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        assert (await ws.receive_str()).startswith("0")  # OPEN
        yield ws


async def dropped(ws: Any) -> None:
    """Read until the server drops the connection (pings answered meanwhile)."""
    while True:
        message = await ws.receive()
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.ERROR):  # fmt: skip
            return
        if message.type == aiohttp.WSMsgType.TEXT and message.data == "2":
            await ws.send_str("3")  # a live client: only the missing CONNECT may end it


@pytest.mark.parametrize(
    "sent",
    [
        ['451-["send",{"_placeholder":true,"num":0}]', b"\x00" * 100],
        [b"\x00" * 100],  # an attachment alone
        ['4611-[{"_placeholder":true,"num":0}]'],  # a binary ack
    ],
)
async def test_a_binary_packet_closes_the_connection(sent: list[Any]):
    async with served() as (sio, url, answered), websocket(url) as ws:
        await ws.send_str('40{"token":"good"}')
        assert (await ws.receive_str()).startswith("40")  # CONNECT answered
        for item in sent:
            await (ws.send_str(item) if isinstance(item, str) else ws.send_bytes(item))
        await asyncio.wait_for(dropped(ws), 10)
        assert not sio._binary_packet and not answered


@pytest.mark.parametrize("connects", [[], ['40{"token":"bad"}'] * 3])
async def test_a_connection_that_does_not_join_in_time_is_closed(connects: list[str]):
    """Silent, or refused again and again: either way it may not stay past its deadline."""
    async with served(connect_timeout=0.5) as (sio, url, _), websocket(url) as ws:
        started = asyncio.get_running_loop().time()
        for packet in connects:
            await ws.send_str(packet)
        await asyncio.wait_for(dropped(ws), 10)
        assert asyncio.get_running_loop().time() - started >= 0.4
        assert not sio._joining


async def test_a_connection_that_joined_is_not_closed():
    async with served(0.1, connect_timeout=0.2) as (sio, url, _), websocket(url) as ws:
        await ws.send_str('40{"token":"bad"}')
        assert (await ws.receive_str()).startswith("44")  # refused: CONNECT_ERROR
        await ws.send_str('40{"token":"good"}')
        assert (await ws.receive_str()).startswith("40")
        assert not sio._joining
        for _ in range(3):  # pings 0.1 s apart, answered: past the deadline it would have had
            assert await asyncio.wait_for(ws.receive_str(), 5) == "2"
            await ws.send_str("3")
        await ws.send_str('421["work"]')
        assert (await asyncio.wait_for(ws.receive_str(), 5)) == '431[{"ok":true}]'


async def test_a_disconnect_leaves_the_sockets_own_rooms_and_no_others():
    """The manager keeps each socket's rooms, so a disconnect need not scan the node's (the
    library's copied and scanned all of them for every socket that went)."""
    manager = Manager()
    Server(async_mode="aiohttp", client_manager=manager)  # the manager's server
    ann = await manager.connect("eio-ann", "/")
    bob = await manager.connect("eio-bob", "/")
    for sid, rooms in ((ann, ["room:lobby", "user:ann"]), (bob, ["room:lobby", "user:bob"])):
        for room in rooms:
            manager.basic_enter_room(sid, "/", room)
    manager.basic_enter_room(ann, "/", "presence:bob")
    manager.basic_leave_room(ann, "/", "presence:bob")
    manager.pre_disconnect(ann, "/")
    await manager.disconnect(ann, "/")
    assert {room: dict(sids) for room, sids in manager.rooms["/"].items()} == {
        None: {bob: "eio-bob"}, bob: {bob: "eio-bob"},
        "room:lobby": {bob: "eio-bob"}, "user:bob": {bob: "eio-bob"},
    }  # fmt: skip
    assert not manager.pending_disconnect and not manager.is_connected(ann, "/")
    assert manager.is_connected(bob, "/") and manager.sid_from_eio_sid("eio-ann", "/") is None
    assert list(manager._rooms_of) == [bob]


async def test_a_socket_that_left_the_namespace_must_join_again_in_time():
    """python-socketio keeps the transport of a socket that left "/" (its DISCONNECT, or
    the server's): it has as long again to join, then it is closed."""
    async with served(connect_timeout=0.5) as (sio, url, _), websocket(url) as ws:
        await ws.send_str('40{"token":"good"}')
        assert (await ws.receive_str()).startswith("40")
        assert not sio._joining
        await ws.send_str("41")  # leaves "/", keeps the connection
        await asyncio.wait_for(dropped(ws), 10)
        assert not sio._joining


async def test_what_arrives_after_the_transport_closed_leaves_nothing_behind():
    """A CONNECT read after the Engine.IO CLOSE packet found no environ and left a half
    connected socket in the manager for good."""
    async with served() as (sio, url, _), websocket(url) as ws:
        await ws.send_str("1")  # Engine.IO CLOSE ...
        await ws.send_str('40{"token":"good"}')  # ... and a CONNECT behind it
        await asyncio.wait_for(dropped(ws), 10)
    assert not sio.manager.rooms.get("/") and not sio.manager.pending_connect
    assert not sio.manager._rooms_of


async def test_a_long_poll_that_closes_and_connects_at_once_leaves_nothing_behind():
    async with served() as (sio, url, _), aiohttp.ClientSession() as http:
        polling = url.replace("ws://", "http://", 1).replace("websocket", "polling")
        async with http.get(polling) as resp:
            sid = json.loads((await resp.text())[1:])["sid"]
        async with http.post(f"{polling}&sid={sid}", data='1\x1e40{"token":"good"}') as resp:
            assert resp.status == 200
        assert not sio.manager.rooms.get("/") and not sio.manager.pending_connect
        assert not sio.manager._rooms_of
