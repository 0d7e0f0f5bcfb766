"""The timer ping (chat/adapters/eio_ping.py) on a real Socket.IO server and client: pings go
out cycle after cycle, the client's pongs keep the connection up, and no socket keeps a task
sleeping until its next ping."""

from __future__ import annotations

import asyncio
from typing import Any

import socketio
from aiohttp import web
from engineio import packet

from chat.adapters import eio_tuning


async def test_pings_keep_a_quiet_websocket_up_without_a_task_per_socket() -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=0.1, ping_timeout=2)
    assert eio_tuning.apply(sio.eio, compression=False)
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    pongs, three = 0, asyncio.Event()
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
        (sock,) = sio.eio.sockets.values()
        library_receive = sock.receive

        async def receive(pkt: Any) -> None:
            nonlocal pongs
            if pkt.packet_type == packet.PONG:
                pongs += 1
                if pongs == 3:
                    three.set()
            await library_receive(pkt)

        sock.receive = receive
        await asyncio.wait_for(three.wait(), 10)  # three ping cycles, each answered
        assert client.connected and not sock.closed
        sleeping = [t for t in asyncio.all_tasks() if "_send_ping" in repr(t.get_coro())]
        assert sleeping == []
    finally:
        await client.disconnect()
        await runner.cleanup()
