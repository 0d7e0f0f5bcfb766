"""A client that does not read what it is sent is disconnected once its queue passes the
bound (``eio_tuning.QUEUED_MAX``, ``CHAT_SOCKET_QUEUE_MAX``), instead of making the node hold
everything sent to it.  The project's Socket.IO server on a real port; raw clients that ask
for a flood of packets and then read nothing: a long-polling one that never polls again, and
a websocket whose receive window is kept small and never drained."""

from __future__ import annotations

import asyncio
import base64
import os
import socket as sockets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from engineio import packet as eio_packet
from listening import listening

from chat.adapters import eio_tuning
from chat.adapters.sio_server import Manager, Server

CAP = 256 * 1024
CHUNK = "x" * 60_000
FLOOD = 600  # 36 MB: more than any loopback connection's buffers hold


@asynccontextmanager
async def served(turns: bool = False) -> AsyncIterator[tuple[Server, str, asyncio.Queue[str]]]:
    """``turns``: each packet sent in a turn of the loop of its own, as deliveries arriving
    one by one (else all in one turn, as a burst: ``send`` corks them)."""
    sio = Server(async_mode="aiohttp", client_manager=Manager())
    sio.eio.async_handlers = False
    assert eio_tuning.apply(sio.eio, compression=False, queued_max=CAP)
    gone: asyncio.Queue[str] = asyncio.Queue()
    sent, handled = asyncio.Event(), asyncio.Event()

    async def answer(name: str, sid: str, *args: Any) -> dict[str, Any]:
        eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
        for _ in range(FLOOD):  # as deliveries to the socket would
            await sio.send_eio(eio_sid, eio_packet.Packet(eio_packet.MESSAGE, data=f"2{CHUNK}"))
            if eio_sid not in sio.eio.sockets or sio.eio.sockets[eio_sid].closed:
                break
            if turns:
                await asyncio.sleep(0)  # the next delivery comes in a later turn
        sent.set()
        return {"ok": True}

    @sio.event  # type: ignore[misc]
    async def disconnect(sid: str, reason: Any = None) -> None:
        gone.put_nowait(str(reason))
        # A disconnect takes its time (the node's unregisters in the cluster): the sender,
        # often a shard's listener, must not wait for it.
        await handled.wait()

    sio.answer = answer
    async with listening(sio) as port:
        try:
            yield sio, f"http://127.0.0.1:{port}/socket.io/?EIO=4", gone
            await asyncio.wait_for(sent.wait(), 10)  # the sender went on, handler still busy
            assert not handled.is_set()
        finally:
            handled.set()


def held(sio: Server) -> int:
    return sum(s.queue.queued for s in sio.eio.sockets.values())


async def test_a_long_polling_client_that_never_polls_again_is_disconnected():
    async with served() as (sio, url, gone), aiohttp.ClientSession() as http:
        async with http.get(f"{url}&transport=polling") as resp:
            opened = await resp.text()
        sid = opened.split('"sid":"', 1)[1].split('"', 1)[0]
        post = f"{url}&transport=polling&sid={sid}"
        async with http.post(post, data="40") as resp:
            assert resp.status == 200
        async with http.post(post, data='42["flood"]') as resp:
            assert resp.status == 200
        assert await asyncio.wait_for(gone.get(), 10) == "transport error"
        assert held(sio) == 0


def frame(text: str) -> bytes:
    """A client's text frame (masked, RFC 6455 5.2), for a payload under 126 bytes."""
    payload, mask = text.encode(), os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((0x81, 0x80 | len(payload))) + mask + masked


@pytest.mark.parametrize("turns", [False, True])
async def test_a_websocket_client_that_stops_reading_is_disconnected(turns: bool):
    """A raw client with a small receive buffer that reads nothing after the upgrade (an
    HTTP client library would go on reading into memory of its own)."""
    async with served(turns) as (sio, url, gone):
        raw = sockets.socket()
        raw.setsockopt(sockets.SOL_SOCKET, sockets.SO_RCVBUF, 4096)
        raw.setblocking(False)
        parts = urlsplit(url)
        await asyncio.get_running_loop().sock_connect(raw, (parts.hostname, parts.port))
        reader, writer = await asyncio.open_connection(sock=raw, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {parts.path}?{parts.query}&transport=websocket HTTP/1.1\r\n"
            f"Host: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        writer.write(frame("40") + frame('42["flood"]'))  # then never reads again
        assert await asyncio.wait_for(gone.get(), 20) == "transport error"
        assert held(sio) == 0
        writer.close()
