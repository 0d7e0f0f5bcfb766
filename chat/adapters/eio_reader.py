"""python-engineio's websocket handler, reading each packet without a task of its own.

``AsyncSocket._websocket_handler`` (python-engineio 4.15) wraps every read of the websocket in
a new task, awaited through ``asyncio.wait_for`` for the ping deadline.  So every packet a
client sends costs a task, its scheduling and ``wait_for``'s future and timer.  And every idle
connection keeps such a task, parked in its read, for its whole life.  ``websocket_handler``
is that method with the read awaited in place under ``asyncio.timeout`` (Python 3.11).
Everything else is the library's, in the library's order: the upgrade from long-polling (the
probe, then ``UPGRADE``), the writer task, what ends the loop, and the close; but a socket
closed by what it read is read no further (the library reads on until the client goes, and
hands over what it reads to a closed socket).

Hazard: this replaces a method of the library, for the series ``eio_tuning.SERIES`` only.
``tests/integration/test_eio_transport.py`` runs the library's handler and this one through the
same cases on a real server and client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from engineio import async_socket, exceptions, packet

#: The library's own, for tests that hold both to the same cases (read before any ``apply``).
LIBRARY = async_socket.AsyncSocket._websocket_handler


async def websocket_handler(self: Any, ws: Any) -> None:
    """Engine.IO over a websocket: one socket's reads, until it closes or goes silent."""
    most = self.server.max_http_buffer_size

    async def websocket_wait() -> Any:
        data = await ws.wait()
        if data and len(data) > most:
            raise ValueError("packet is too large")
        return data

    if self.connected:  # an upgrade from long-polling
        if not await _upgraded(self, ws, websocket_wait):
            return
    else:
        self.connected = True
        self.upgraded = True
    writer_task = asyncio.ensure_future(_writer(self, ws))
    self.server.logger.info("%s: Upgrade to websocket successful", self.sid)
    deadline = self.server.ping_interval + self.server.ping_timeout
    while True:
        try:
            async with asyncio.timeout(deadline):
                data = await websocket_wait()
        except asyncio.CancelledError:  # the library stops reading, then closes as below
            break
        except Exception:  # silent past the ping deadline, too large, or the socket failed
            break
        if data is None or not await _receive(self, packet.Packet(encoded_packet=data)):
            break  # closed by the client, or the socket closed meanwhile
        if self.closed:  # closed by what it read (a CLOSE, a refused packet): read no more
            break
    await self.queue.put(None)  # the writer's end
    await writer_task
    await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)


async def _receive(self: Any, pkt: Any) -> bool:
    """Hand a packet to the socket; False once the socket is closed (the loop ends)."""
    try:
        await self.receive(pkt)
    except exceptions.UnknownPacketError:
        pass
    except exceptions.SocketIsClosedError:
        self.server.logger.info("Receive error -- socket is closed")
        return False
    except BaseException:  # the library's bare ``except``: logged, and the reading goes on
        self.server.logger.exception("Unknown receive error")
    return True


async def _upgraded(self: Any, ws: Any, wait: Callable[[], Awaitable[Any]]) -> bool:
    """The library's upgrade of a long-polling socket: ``2probe`` answered ``3probe``, the
    long-poll ended with a NOOP, then ``5`` (UPGRADE).  False: not upgraded."""
    self.upgrading = True  # hold packet sends during the upgrade
    try:
        pkt = packet.Packet(encoded_packet=await wait())
    except OSError:
        return False
    if pkt.packet_type != packet.PING or pkt.data != "probe":
        self.server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
        self.upgrading = False
        return False
    await ws.send(packet.Packet(packet.PONG, data="probe").encode())
    await self.queue.put(packet.Packet(packet.NOOP))  # end poll
    try:
        data = await wait()
    except OSError:
        self.upgrading = False
        return False
    if packet.Packet(encoded_packet=data).packet_type != packet.UPGRADE:
        self.upgraded = False
        self.server.logger.info(
            "%s: Failed websocket upgrade, expected UPGRADE packet, received %s instead.",
            self.sid, data,
        )  # fmt: skip
        self.upgrading = False
        return False
    self.upgraded = True
    self.upgrading = False
    return True


async def _writer(self: Any, ws: Any) -> None:
    while True:
        try:
            packets = await self.poll()
        except exceptions.QueueEmpty:
            break
        if not packets:  # the socket closed
            break
        try:
            for pkt in packets:
                await ws.send(pkt.encode())
        except BaseException:  # as the library's bare ``except``: any failed write ends it
            break
    await ws.close()
