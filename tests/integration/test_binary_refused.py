"""This protocol carries JSON only: a binary packet (whose attachments python-socketio would
keep until as many arrived as the packet claims) closes the connection.  The project's
Socket.IO server on a real port, a raw websocket client."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from chat.adapters import eio_tuning
from chat.adapters.sio_server import Manager, Server


@pytest.mark.parametrize(
    "sent",
    [
        ['451-["send",{"_placeholder":true,"num":0}]', b"\x00" * 100],
        [b"\x00" * 100],  # an attachment alone
        ['4611-[{"_placeholder":true,"num":0}]'],  # a binary ack
    ],
)
async def test_a_binary_packet_closes_the_connection(sent: list[Any]):
    sio = Server(async_mode="aiohttp", client_manager=Manager())
    sio.eio.async_handlers = False
    assert eio_tuning.apply(sio.eio, compression=False)
    answered: list[Any] = []

    async def answer(*args: Any) -> dict[str, Any]:
        answered.append(args)
        return {"ok": True}

    sio.answer = answer
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as http:
            url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
            async with http.ws_connect(url) as ws:
                assert (await ws.receive_str()).startswith("0")  # OPEN
                await ws.send_str("40")
                assert (await ws.receive_str()).startswith("40")  # CONNECT answered
                for item in sent:
                    await (ws.send_str(item) if isinstance(item, str) else ws.send_bytes(item))
                while (await asyncio.wait_for(ws.receive(), 10)).type not in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.CLOSING,
                ):
                    pass
        assert not sio._binary_packet and not answered
    finally:
        await runner.cleanup()
