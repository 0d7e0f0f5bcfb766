"""Engine.IO's transport as tuned here (chat/adapters/eio_ping.py, eio_reader.py), on a real
Socket.IO server and real clients.  The reader cases run twice: with the library's websocket
handler and with ours, which must behave the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import socketio
from engineio import async_socket, packet
from listening import listening

from chat.adapters import eio_reader, eio_tuning

LIBRARY_HANDLER = eio_reader.LIBRARY
HANDLERS = {"library": LIBRARY_HANDLER, "project": eio_reader.websocket_handler}


@pytest.fixture(params=sorted(HANDLERS))
def handler(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Which websocket handler the servers of the test run (set after ``apply``)."""
    monkeypatch.setattr(async_socket.AsyncSocket, "_websocket_handler", LIBRARY_HANDLER)
    yield request.param


@asynccontextmanager
async def served(handler: str | None = None, **options: Any) -> AsyncIterator[Any]:
    """A tuned python-socketio server on a free port: (server, url, disconnect reasons)."""
    sio = socketio.AsyncServer(async_mode="aiohttp", **options)
    assert eio_tuning.apply(sio.eio, compression=False)
    if handler is not None:
        async_socket.AsyncSocket._websocket_handler = HANDLERS[handler]
    gone: asyncio.Queue[str] = asyncio.Queue()

    @sio.on("echo")  # type: ignore[misc]
    async def echo(sid: str, data: Any) -> Any:
        await sio.emit("echoed", data, to=sid)
        return {"got": data}

    @sio.event  # type: ignore[misc]
    async def disconnect(sid: str, reason: Any = None) -> None:
        gone.put_nowait(str(reason))

    async with listening(sio) as port:
        yield sio, f"http://127.0.0.1:{port}", gone


@pytest.mark.parametrize("transports", [["websocket"], ["polling", "websocket"]])
async def test_events_both_ways_then_a_client_disconnect(handler: str, transports: list[str]):
    async with served(handler) as (sio, url, gone):
        client = socketio.AsyncClient(reconnection=False)
        echoed: asyncio.Queue[Any] = asyncio.Queue()
        client.on("echoed", echoed.put_nowait)
        await client.connect(url, transports=transports)
        assert client.transport() == "websocket"  # upgraded from long-polling where it began
        for n in range(3):
            assert await client.call("echo", {"n": n}, timeout=5) == {"got": {"n": n}}
            assert await asyncio.wait_for(echoed.get(), 5) == {"n": n}
        await client.disconnect()
        reason = await asyncio.wait_for(gone.get(), 5)
        assert reason in ("client disconnect", "transport close")
        assert not sio.eio.sockets


async def raw_websocket(url: str) -> tuple[aiohttp.ClientSession, Any]:
    """A websocket that speaks Engine.IO's open and nothing else (never answers a ping)."""
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket")
    opened = await ws.receive_str()
    assert opened.startswith(str(packet.OPEN))
    await ws.send_str("40")  # Socket.IO CONNECT on "/"
    return session, ws


async def closed(ws: Any) -> list[str]:
    """What the server sent until it closed the websocket."""
    texts = []
    async for message in ws:
        if message.type == aiohttp.WSMsgType.TEXT:
            texts.append(message.data)
    return texts


async def test_a_client_silent_past_the_ping_deadline_is_closed(handler: str):
    async with served(handler, ping_interval=0.1, ping_timeout=0.3) as (sio, url, gone):
        session, ws = await raw_websocket(url)
        async with session:
            sent = await asyncio.wait_for(closed(ws), 10)
        assert str(packet.PING) in sent  # pinged, never answered
        assert await asyncio.wait_for(gone.get(), 5) in ("ping timeout", "transport close")
        assert not sio.eio.sockets


async def test_a_packet_above_the_size_limit_closes_the_socket(handler: str):
    async with served(handler, max_http_buffer_size=1000) as (sio, url, gone):
        session, ws = await raw_websocket(url)
        async with session:
            await ws.send_str('42["echo","' + "x" * 2000 + '"]')
            await asyncio.wait_for(closed(ws), 10)
        await asyncio.wait_for(gone.get(), 5)
        assert not sio.eio.sockets


async def test_pings_keep_a_quiet_websocket_up_without_a_task_per_socket() -> None:
    async with served(ping_interval=0.1, ping_timeout=2) as (sio, url, _):
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(url, transports=["websocket"])
        (sock,) = sio.eio.sockets.values()
        library_receive, pongs, three = sock.receive, [], asyncio.Event()

        async def receive(pkt: Any) -> None:
            if pkt.packet_type == packet.PONG:
                pongs.append(pkt)
                if len(pongs) == 3:
                    three.set()
            await library_receive(pkt)

        sock.receive = receive
        await asyncio.wait_for(three.wait(), 10)  # three ping cycles, each answered
        assert client.connected and not sock.closed
        waiting = [repr(t.get_coro()) for t in asyncio.all_tasks()]
        # No task sleeps until a socket's next ping, and none waits for its next packet.
        assert not [w for w in waiting if "_send_ping" in w or "websocket_wait" in w]
        await client.disconnect()
