"""python-engineio 4.x trimmed where it spends per packet and per connection for nothing.

1. ``poll``: every packet a socket sends (an ack, a delivered message, a ping) wakes the
   socket's writer, which waits in ``AsyncSocket.poll()`` with ``asyncio.wait_for(queue.get(),
   timeout)``.  On Python 3.11 ``wait_for`` wraps the ``get()`` in a task of its own, so each
   packet sent cost one more task and its scheduling: about 5 % of a node's CPU under the dm
   benchmark (docs/performance.md).  This ``poll`` does what the library's does (the same
   return values, the same ``QueueEmpty`` on timeout or cancellation, ``None`` still ends the
   writer) with ``asyncio.timeout`` around the wait, and no wait at all when packets are queued.
3. ``PlainWebSocket``: engineio's aiohttp websocket, answering without permessage-deflate
   (unless ``CHAT_WS_COMPRESSION``).  A compressed websocket keeps a zlib context of about
   260 KiB on the server, for messages mostly shorter than compression pays for; Socket.IO's
   own server declines it by default for the same reason.  Declining it where the response is
   made costs nothing per connection, where rewriting the request's headers cost a clone of
   the request kept for the socket's life (about 1.8 KiB).  Handed to engineio as its
   driver's websocket class.
2. ``PacketQueue`` (``eio_queue.py``): the queue of each socket.  engineio makes an
   ``asyncio.Queue`` (three deques, about 2 KiB, kept for the life of every idle connection);
   this one holds a list and the futures of whoever waits, created only while someone does,
   and counts the bytes it holds.  It is handed to engineio through its documented
   ``create_queue`` hook, not patched in.

4. ``send``: packets for a socket whose websocket writer is idle are written at the end of
   the loop's turn, together, instead of waking the writer for each (see there); the node's
   sends go through it (``sio.py``).  It also bounds what a socket holds (``QUEUED_MAX``): a
   client that does not read is disconnected instead of growing the node's memory.

5. The ping from a timer (``eio_ping.py``) and the websocket read without a task per packet
   (``eio_reader.py``), installed by ``apply`` with the rest.

Hazard: ``poll`` replaces a method of the library.  It is applied only to the python-engineio
series it was written against (``SERIES``); on another one the library's own ``poll`` stays
and a log line says so.  ``tests/unit/test_eio_tuning.py`` holds both polls, over both queues, to
the same behaviour, and every Socket.IO test runs over them.
"""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import version
from typing import Any

from aiohttp.web import WebSocketResponse
from engineio import async_socket, exceptions, payload
from engineio.async_drivers import aiohttp as eio_aiohttp

from chat.adapters import eio_ping, eio_reader
from chat.adapters.eio_queue import PacketQueue, packet_size

log = logging.getLogger(__name__)

SERIES = "4.15."


async def poll(self: Any) -> list[Any]:
    """Wait for packets to send to the client (python-engineio's contract)."""
    queue = self.queue
    if queue.empty():
        # Only the websocket writer polls once the socket is upgraded (engineio answers a
        # long-poll of an upgraded socket with a NOOP), and it holds no packet while parked.
        idle = isinstance(queue, PacketQueue) and self.upgraded
        if idle:
            queue.writer_idle = True
        try:
            async with asyncio.timeout(self.server.ping_interval + self.server.ping_timeout):
                first = await queue.get()
        except (TimeoutError, asyncio.CancelledError):
            raise exceptions.QueueEmpty() from None
        finally:
            if idle:
                queue.writer_idle = False
    else:
        first = queue.get_nowait()
    queue.task_done()
    if first is None:
        return []
    packets = [first]
    while not queue.empty():
        packet = queue.get_nowait()
        queue.task_done()
        if packet is None:  # leave the end marker for the next poll, as the library does
            queue.put_nowait(None)
            break
        packets.append(packet)
    return packets


class PlainWebSocket(eio_aiohttp.WebSocket):  # type: ignore[misc]
    """python-engineio's ``WebSocket.__call__`` for aiohttp, with ``compress=False``, made
    known to its Engine.IO socket for ``send``."""

    _transport: Any = None

    async def __call__(self, environ: dict[str, Any]) -> WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await self._sock.prepare(request)
        self._transport = request.transport
        self.environ = environ
        socket = getattr(self.handler, "__self__", None)  # the AsyncSocket being upgraded
        queue = getattr(socket, "queue", None)
        if not isinstance(queue, PacketQueue):
            queue = None
        if queue is not None:
            queue.websocket = self
        try:
            await self.handler(self)
        finally:
            if queue is not None:
                queue.websocket = None  # no cycle left behind
        return self._sock

    def write_now(self, texts: list[Any]) -> bool:
        """Text frames in one write on the connection (what aiohttp's writer writes for an
        uncompressed frame: every write to the transport keeps its order, whoever makes it);
        False, writing nothing, when the connection is closing, its send buffer is already
        full (the writer's ``drain`` then keeps slow clients bounded) or a packet is binary."""
        transport = self._transport
        if (
            self._sock.closed
            or transport is None
            or transport.is_closing()
            or transport.get_write_buffer_size() > WRITE_BUFFER_MAX
            or any(not isinstance(text, str) for text in texts)
        ):
            return False
        transport.write(b"".join([_text_frame(text.encode()) for text in texts]))
        return True


#: Bytes a connection may have waiting in its send buffer for ``write_now`` to add more.
WRITE_BUFFER_MAX = 64 * 1024


def _text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame, as a server sends it (RFC 6455, section 5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


async def send(socket: Any, packet: Any) -> None:
    """``AsyncSocket.send``, without the writer task when the socket's writer is idle.

    Through the queue a packet wakes the writer task, which takes it, writes it and parks
    again (a task step, a future and a timeout per packet, and a write each).  When the writer
    is parked with nothing queued (``poll``), nothing sent earlier is waiting: the packet is
    written at once, and whatever else comes for the socket within this turn of the loop is
    kept on its queue (``corked``) and written at the turn's end, in one write (``_flush``):
    a burst of room messages to one socket then costs one system call, not one each, and
    the first packet waits for nothing (a deferred first write cost DMs tail latency on a
    busy machine).  Anything else (long-polling, an upgrade in progress, packets queued, a
    closing socket) takes the queue.

    Order: a packet queued after packets were corked wakes the writer with a callback
    scheduled after the flush; what the flush cannot write goes to the front of the queue."""
    queue = socket.queue
    if not isinstance(queue, PacketQueue):  # not tuned: the library's way
        await socket.send(packet)
        return
    corked = queue.corked
    if corked is not None and queue.empty():
        corked.append(packet)
        queue.queued += packet_size(packet)
        await _bounded(socket, queue)
        return
    websocket = queue.websocket
    if (
        websocket is None
        or not queue.writer_idle
        or not queue.empty()
        or socket.closing
        or socket.closed
    ):
        await _queue(socket, queue, packet)
        return
    if not await socket.check_ping_timeout():
        return
    if not websocket.write_now([packet.encode()]):
        await _queue(socket, queue, packet)
        return
    queue.corked = []  # what follows within this turn leaves together at its end
    asyncio.get_running_loop().call_soon(_flush, socket, queue, websocket)


#: Bytes a socket may have queued, past what its connection's send buffer holds.  A client
#: that does not read what it is sent (a closed TCP window, a long-poll it never asks for)
#: would otherwise make the node hold everything sent to it; past this it is disconnected,
#: and a client that reconnects catches up with ``sync`` (``CHAT_SOCKET_QUEUE_MAX``).
QUEUED_MAX = 4 * 1024 * 1024


async def _queue(socket: Any, queue: PacketQueue, packet: Any) -> None:
    await socket.send(packet)
    await _bounded(socket, queue)


async def _bounded(socket: Any, queue: PacketQueue) -> None:
    """Disconnect the socket if it holds more than it may (``QUEUED_MAX``)."""
    if queue.queued > socket.server.chat_queued_max:
        log.warning("%s: %d bytes not read by the client: disconnected", socket.sid, queue.queued)
        abort(socket, socket.server.reason.TRANSPORT_ERROR)


#: The closes ``abort`` started (a reference to each until it ends).
_closing: set[asyncio.Task[None]] = set()


def abort(socket: Any, reason: str) -> None:
    """Close the socket at once, whatever its client does: its connection is dropped (the
    reader and the writer end on it), what it holds let go; the disconnect handlers then run
    in a task of their own.  Hazard: the caller may be a shard's listener delivering to the
    socket, which must not wait on the cluster calls a disconnect makes."""
    if socket.closing or socket.closed:
        return
    queue = socket.queue
    if isinstance(queue, PacketQueue):
        if queue.websocket is not None and queue.websocket._transport is not None:
            queue.websocket._transport.abort()
        queue.drop()  # never to be sent
        queue.put_nowait(None)  # ends the writer, or answers a long-poll waiting for packets
    task = asyncio.ensure_future(socket.close(wait=False, abort=True, reason=reason))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


def _flush(socket: Any, queue: PacketQueue, websocket: PlainWebSocket) -> None:
    packets, queue.corked = queue.corked or [], None
    queue.queued -= sum(packet_size(p) for p in packets)
    if packets and (socket.closed or not websocket.write_now([p.encode() for p in packets])):
        queue.put_front(packets)  # the writer writes them (or meets the closed socket)


ORIGINAL = async_socket.AsyncSocket.poll


def apply(server: Any, *, compression: bool, queued_max: int = QUEUED_MAX) -> bool:
    """Install ``poll``, the timer ping (``eio_ping``), the reader (``eio_reader``),
    ``PacketQueue`` (its sockets bounded by ``queued_max`` bytes) and (without
    ``compression``) ``PlainWebSocket`` for the engineio ``server``, if the installed
    python-engineio is the series they were written for.  On another series compression stays
    declined, by the request's headers."""
    # Hazard: python-engineio drops a long-poll POST of more than 16 packets whole (and
    # answers it "ok"); the official JS client sends every event emitted meanwhile in one
    # POST, so a burst of 17 (a reconnect's sync, history and watches) was never answered.
    # A POST is bounded by its size instead (a packet and its separator are at least two
    # bytes); its events are read as the socket's events in flight allow (``sio_server.py``).
    # What that lets a client make a node hold: 64 KiB of one-byte packets decode to about
    # 3.7 MB, once per socket (a second POST while one is held closes the connection), below
    # the 4 MiB a socket's outgoing queue may hold (``CHAT_SOCKET_QUEUE_MAX``).
    payload.Payload.max_decode_packets = max(16, server.max_http_buffer_size // 2)
    installed = version("python-engineio")
    if not installed.startswith(SERIES):
        log.info("python-engineio %s: its own AsyncSocket.poll and queues are kept", installed)
        return False
    async_socket.AsyncSocket.poll = poll
    async_socket.AsyncSocket.schedule_ping = eio_ping.schedule_ping
    async_socket.AsyncSocket._websocket_handler = eio_reader.websocket_handler
    server.create_queue = PacketQueue
    server.chat_queued_max = queued_max  # read by ``send`` (the queue is only ours once here)
    if not compression:
        # A copy per server: the driver's table is shared by every engineio server.
        server._async = {**server._async, "websocket": PlainWebSocket}
    return True
