"""python-socketio's server, subclassed where it spent per event for nothing this server uses,
and its JSON codec.  ``sio.py`` (the adapter) builds it; nothing else touches it.

- ``Server``: every client event on "/" goes straight to one answer function, refused first
  when its name is one Socket.IO reserves; acks and events are sent as Engine.IO packets
  through ``eio_tuning.send``.
- ``Manager``: local rooms only, and a hook once the client has its CONNECT packet.

A socket has at most ``Server.most_in_flight`` events being answered at once; the next one is
not taken until one of them is answered.  Its transport is not read meanwhile, so a client that
sends faster than it is answered is held back by TCP (or its long-poll POST waits) instead of
making the node hold a task per event it sent.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import msgspec
import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from chat.adapters import eio_tuning
from chat.errors import invalid_request
from chat.models import decode_json, encode_json

NAMESPACE = "/"


class Json:
    """msgspec as python-socketio's JSON codec (acks, ``session``): several times faster than
    the json module, same JSON."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return encode_json(obj).decode()

    @staticmethod
    def loads(text: str | bytes, **_: Any) -> Any:
        try:
            return decode_json(text)
        except msgspec.DecodeError:
            # Hazard: JavaScript strings may hold lone surrogates, and JSON.stringify sends
            # them as escapes ("\ud800") that msgspec refuses; the packet then failed to
            # decode and its event was never answered.  Such text is valid JSON: read it
            # with the json module, the lone surrogates removed from every string (as from
            # every text the server keeps), and the event is answered as any other.
            return _without_surrogates(json.loads(text))


_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("", value)
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


def event_packet(event: str, data_json: bytes) -> eio_packet.Packet:
    """A Socket.IO EVENT on namespace "/" around a payload that is already JSON."""
    text = f"2[{encode_json(event).decode()},{data_json.decode()}]"
    return eio_packet.Packet(eio_packet.MESSAGE, data=text)


class Manager(socketio.AsyncManager):  # type: ignore[misc]
    """Local rooms only (never a cross-node manager: the broker does that), plus a hook that
    runs once the client has been sent its CONNECT packet, so ``session`` cannot overtake it.

    It also keeps each socket's rooms on "/": python-socketio's disconnect copies and scans
    every room of the node to find the socket's (a few ms at 20,000 sockets, for each one
    that goes: a storm of disconnects cost the square of the node's sockets)."""

    on_connected: Callable[[str], Awaitable[None]] | None = None
    #: Called with the Engine.IO sid of a socket that left "/" (its transport may stay open).
    on_left: Callable[[str], None] | None = None

    def __init__(self) -> None:
        super().__init__()
        self._rooms_of: dict[str, dict[Any, None]] = {}  # sid on "/" -> its rooms, in order

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        if namespace == NAMESPACE:
            self._rooms_of.setdefault(sid, {})[room] = None

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        if namespace == NAMESPACE:
            self._rooms_of.get(sid, {}).pop(room, None)

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        # Hazard: the library's method (python-socketio 5.x) with its scan replaced: leave
        # the socket's own rooms, the others are untouched; then its bookkeeping as there.
        rooms = self._rooms_of.pop(sid, None) if namespace == NAMESPACE else None
        if rooms is None:
            super().basic_disconnect(sid, namespace, **kwargs)
            return
        eio_sid = self.rooms.get(namespace, {}).get(None, {}).get(sid)
        for room in rooms:
            super().basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            if sid in pending.get(namespace, ()):
                pending[namespace].remove(sid)
                if not pending[namespace]:
                    del pending[namespace]
        if eio_sid is not None and self.on_left is not None:
            self.on_left(eio_sid)

    async def connect(self, sid: str, namespace: str) -> Any:
        result = await super().connect(sid, namespace)
        if self.on_connected is not None and namespace == NAMESPACE:
            await self.on_connected(sid)
        return result


#: Event names python-socketio dispatches to its own lifecycle handlers (``connect``,
#: ``disconnect``) or to the catch-all under another calling convention (``*``), and names
#: Socket.IO clients treat as their own.  Sent by a client as ordinary events they would
#: re-run the handshake (leaking subscriptions) or tear down the socket's state while its
#: transport stays open, so they are refused before python-socketio looks at them.
RESERVED_EVENTS = frozenset(
    {"connect", "disconnect", "*", "connect_error", "disconnecting", "newListener",
     "removeListener", "error", "message"}
)  # fmt: skip


#: Socket.IO's BINARY_EVENT and BINARY_ACK packet types, as their text begins.
BINARY = (str(sio_packet.BINARY_EVENT), str(sio_packet.BINARY_ACK))


class Server(socketio.AsyncServer):  # type: ignore[misc]
    #: Every client event on "/" goes straight to this (``SocketServer._event``), in a task of
    #: its own as python-socketio's ``async_handlers`` would run it, and its answer is sent as
    #: the ACK packet's text through ``send_eio``, as ``emit_raw`` sends events.
    #: python-socketio's own dispatch cost about 40 function calls per event for nothing we
    #: use: the handler lookup, an ``iscoroutinefunction`` check, a Packet whose payload is
    #: walked for bytes (ours never holds any) and re-encoded.
    answer: Callable[..., Awaitable[dict[str, Any]]] | None = None
    #: Events one socket may have unanswered; the next is read once one of them is answered.
    most_in_flight = 32
    #: Seconds from its opening an Engine.IO connection has to join "/" (it sent no CONNECT,
    #: or was refused); a handshake in progress is not cut short.  Until then it holds its
    #: socket and request (socket.io's connectTimeout).
    connect_timeout = 20.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answering: set[asyncio.Future[None]] = set()
        # Per Engine.IO sid, only while it has events unanswered (an idle socket costs nothing):
        # how many, and the reads waiting for one of them to end.
        self._in_flight: dict[str, int] = {}
        self._held: dict[str, asyncio.Future[None]] = {}  # the read waiting, one per socket
        #: Engine.IO sid -> its deadline and the timer set for it, until it joins "/".
        self._joining: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        if isinstance(self.manager, Manager):
            self.manager.on_left = self._left

    async def _handle_eio_connect(self, eio_sid: str, environ: Any) -> Any:
        answer = await super()._handle_eio_connect(eio_sid, environ)
        self._arm(eio_sid, asyncio.get_running_loop().time() + self.connect_timeout)
        return answer

    async def _handle_connect(self, eio_sid: str, namespace: Any, data: Any) -> None:
        joining = self._joining.pop(eio_sid, None)
        if joining is not None:  # a handshake in progress does not run out of time
            joining[1].cancel()
        await super()._handle_connect(eio_sid, namespace, data)
        if joining is not None and self.manager.sid_from_eio_sid(eio_sid, NAMESPACE) is None:
            self._arm(eio_sid, joining[0])  # refused: it may try again, until its deadline

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        try:
            await super()._handle_eio_disconnect(eio_sid, reason)
        finally:
            joining = self._joining.pop(eio_sid, None)
            if joining is not None:
                joining[1].cancel()

    def _left(self, eio_sid: str) -> None:
        """A socket left "/" (a client's DISCONNECT, or the server's): an open transport
        has as long again to join, as a new one (python-socketio keeps it open)."""
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closing or socket.closed or eio_sid in self._joining:
            return
        self._arm(eio_sid, asyncio.get_running_loop().time() + self.connect_timeout)

    def _arm(self, eio_sid: str, deadline: float) -> None:
        before = self._joining.get(eio_sid)
        if before is not None:
            before[1].cancel()
        timer = asyncio.get_running_loop().call_at(deadline, self._overdue, eio_sid)
        self._joining[eio_sid] = (deadline, timer)

    def _overdue(self, eio_sid: str) -> None:
        self._joining.pop(eio_sid, None)
        self._abort(eio_sid, "no Socket.IO connection in time")

    def _abort(self, eio_sid: str, why: str) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None:
            self.logger.info("%s: %s, disconnecting", eio_sid, why)
            eio_tuning.abort(socket, self.eio.reason.TRANSPORT_ERROR)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if eio_sid not in self.environ:
            # Closed (its environ goes with its Engine.IO disconnect), but its reader handed
            # over what it had read: a CONNECT behind a CLOSE would leave a half-connected
            # socket in the manager for good.
            return
        # Hazard: python-socketio keeps a binary packet's attachments until as many arrived as
        # the packet says (a count the client picks), so they could grow without bound.  This
        # protocol carries JSON only: a binary packet or attachment closes the connection.
        # (Not every packet is text: Engine.IO hands over what looks like JSON decoded.)
        if isinstance(data, bytes | bytearray) or (isinstance(data, str) and data[:1] in BINARY):
            self._abort(eio_sid, "binary packet refused")
            return
        await super()._handle_eio_message(eio_sid, data)

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        # Hazard: python-socketio's private hook, the one place every client EVENT passes
        # (pinned to python-socketio 5.x in setup.cfg; tests/e2e/test_authz_matrix.py proves it).
        name = data[0] if data else None
        if not isinstance(name, str) or name in RESERVED_EVENTS:
            if id is not None:
                refused = invalid_request(
                    f"{name!r} is reserved by Socket.IO"
                    if isinstance(name, str)
                    else "an event name must be a string"
                )
                ack = {"ok": False, "error": refused.to_wire()}
                pkt = self.packet_class(
                    sio_packet.ACK, namespace=namespace or "/", id=id, data=[ack]
                )
                await self._send_packet(eio_sid, pkt)
            return
        # Hazard: this await holds the socket's reader (Engine.IO hands packets over one at a
        # time), which is the point: nothing more is read from a socket at its limit.  Before
        # the checks below: the socket may have closed meanwhile.
        while self._in_flight.get(eio_sid, 0) >= self.most_in_flight:
            if eio_sid in self._held:  # a second long-poll POST while one waits: no client
                self._abort(eio_sid, "overlapping requests")  # does that; each held its body
                return
            held = self._held[eio_sid] = asyncio.get_running_loop().create_future()
            try:
                await held
            finally:
                self._held.pop(eio_sid, None)
        sid = self.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        answer = self.answer
        if (
            answer is None
            or (namespace or NAMESPACE) != NAMESPACE
            or not self.manager.is_connected(sid, NAMESPACE)
        ):
            # python-socketio's own handling: it logs and drops what nothing answers.
            await super()._handle_event(eio_sid, namespace, id, data)
            return
        self._in_flight[eio_sid] = self._in_flight.get(eio_sid, 0) + 1
        task = asyncio.ensure_future(self._answer(answer, eio_sid, sid, id, name, data[1:]))
        self._answering.add(task)  # a reference, as python-socketio keeps one
        task.add_done_callback(partial(self._answered, eio_sid))

    def _answered(self, eio_sid: str, task: asyncio.Future[None]) -> None:
        self._answering.discard(task)
        left = self._in_flight.pop(eio_sid) - 1
        if left:
            self._in_flight[eio_sid] = left
        held = self._held.get(eio_sid)
        if held is not None and not held.done():  # not if cancelled (the socket closed)
            held.set_result(None)

    async def _answer(
        self, answer: Callable[..., Awaitable[dict[str, Any]]], eio_sid: str, sid: str, id: Any,
        name: str, args: Any,
    ) -> None:  # fmt: skip
        reply = await answer(name, sid, *args)
        if id is not None:  # Socket.IO's ACK on "/": "3<id>[<reply>]"
            text = f"3{id}[{encode_json(reply).decode()}]"
            await self.send_eio(eio_sid, eio_packet.Packet(eio_packet.MESSAGE, data=text))

    async def send_eio(self, eio_sid: str, packet: eio_packet.Packet) -> None:
        """``eio.send_packet``, written at once where the transport allows it
        (``eio_tuning.send``)."""
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None:
            await eio_tuning.send(socket, packet)
