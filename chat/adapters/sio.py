"""The Socket.IO adapter: the only module that imports socketio.

It turns Socket.IO connects, events and disconnects into calls of the use-case layer and
delivers what the node receives to local sockets.  Every client event goes through one
dispatcher that validates the shape, never lets an exception escape, and always acks
``{ok: true, ...}`` or ``{ok: false, error: {code, message}}``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from chat import channels
from chat.adapters import eio_tuning
from chat.core.connections import Conn, Connections
from chat.core.lifetime import SESSION_END, session_end
from chat.core.tokens import session_cookie
from chat.errors import ChatError, internal, invalid_request, unauthorized, unavailable
from chat.models import decode_json, encode_json

log = logging.getLogger(__name__)

EventHandler = Callable[[Conn, dict[str, Any]], Awaitable[dict[str, Any]]]
NAMESPACE = "/"


class RefusedError(socketio.exceptions.ConnectionRefusedError):  # type: ignore[misc]
    """Refusal whose ``connect_error`` data is ``{code, message}``.

    The JS client exposes ``err.message`` and ``err.data``; python-socketio passes the whole
    dict.  Both find ``code`` and ``message``.
    """

    def __init__(self, error: ChatError) -> None:
        super().__init__(error.message)
        self.error_args = {**error.to_wire(), "data": error.to_wire()}


class _Json:
    """msgspec as python-socketio's JSON codec (acks, ``session``): several times faster than
    the json module, same JSON."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return encode_json(obj).decode()

    @staticmethod
    def loads(text: str | bytes, **_: Any) -> Any:
        return decode_json(text)


def _event_packet(event: str, data_json: bytes) -> eio_packet.Packet:
    """A Socket.IO EVENT on namespace "/" around a payload that is already JSON."""
    text = f"2[{encode_json(event).decode()},{data_json.decode()}]"
    return eio_packet.Packet(eio_packet.MESSAGE, data=text)


class _Manager(socketio.AsyncManager):  # type: ignore[misc]
    """Local rooms only (never a cross-node manager: the broker does that), plus a hook that
    runs once the client has been sent its CONNECT packet, so ``session`` cannot overtake it."""

    on_connected: Callable[[str], Awaitable[None]] | None = None

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


class _Server(socketio.AsyncServer):  # type: ignore[misc]
    #: Every client event on "/" goes straight to this (``SocketServer._event``), in a task of
    #: its own as python-socketio's ``async_handlers`` would run it, and its answer is sent as
    #: the ACK packet's text through ``send_eio``, as ``emit_raw`` sends events.
    #: python-socketio's own dispatch cost about 40 function calls per event for nothing we
    #: use: the handler lookup, an ``iscoroutinefunction`` check, a Packet whose payload is
    #: walked for bytes (ours never holds any) and re-encoded.
    answer: Callable[..., Awaitable[dict[str, Any]]] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answering: set[asyncio.Future[None]] = set()

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
        task = asyncio.ensure_future(self._answer(answer, eio_sid, sid, id, name, data[1:]))
        self._answering.add(task)  # a reference, as python-socketio keeps one
        task.add_done_callback(self._answering.discard)

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


#: What a socket's environ keeps after its handshake (python-socketio holds the environ of
#: every socket for its whole life; nothing here reads the request's headers after connect).
ENVIRON_KEPT = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "REMOTE_ADDR", "HTTP_HOST",
                "HTTP_ORIGIN", "wsgi.url_scheme", "aiohttp.request")  # fmt: skip


def _forget_headers(environ: dict[str, Any]) -> None:
    """About 1 KiB per idle connection: a copy of every request header.  ``clear`` then
    ``update``, because a dict's table never shrinks when keys are deleted."""
    kept = {key: environ[key] for key in ENVIRON_KEPT if key in environ}
    environ.clear()
    environ.update(kept)


class SocketServer:
    """Owns the python-socketio server; implements ``LocalDelivery`` for the use cases."""

    def __init__(
        self, *, origins: tuple[str, ...], max_payload: int, compression: bool = False
    ) -> None:
        self._allowed = set(origins)
        self._connections: Connections | None = None
        self._events: dict[str, EventHandler] = {}
        self._closing = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        manager = _Manager()
        manager.on_connected = self._on_connected
        self.sio = _Server(
            async_mode="aiohttp",
            client_manager=manager,
            json=_Json,
            cors_allowed_origins=self._origin_allowed,
            max_http_buffer_size=max_payload,
            # Loggers, not False: with a bool each library adds a StreamHandler of its own and
            # every record is printed twice, once unscrubbed (chat/logs.py sets their level).
            logger=logging.getLogger("socketio.server"),
            engineio_logger=logging.getLogger("engineio.server"),
        )
        # One task per event, not two: python-socketio already runs each event handler in a
        # task of its own (its async_handlers), so Engine.IO need not start one per message
        # to call python-socketio.  A socket's packets are then read one after the other.
        self.sio.eio.async_handlers = False
        #: Whether engineio was tuned (eio_tuning.py), and so declines compression itself.
        self.tuned = eio_tuning.apply(self.sio.eio, compression=compression)

    def serve(self, connections: Connections, events: dict[str, EventHandler]) -> None:
        """Start answering: bound after construction because delivery (this object) is needed
        to build the layers that ``connections`` and ``events`` come from."""
        self._connections = connections
        self._events = events
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        self.sio.answer = self._event  # every client event (no catch-all "*" handler needed)

    @property
    def connections(self) -> Connections:
        if self._connections is None:
            raise RuntimeError("SocketServer.serve() was not called")
        return self._connections

    def attach(self, app: Any) -> None:
        self.sio.attach(app)

    def _origin_allowed(self, origin: str, environ: dict[str, Any]) -> bool:
        """The allowlist, plus the node's own origin (its web page)."""
        if origin in self._allowed:
            return True
        own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
        return origin == own

    # --- LocalDelivery -----------------------------------------------------------------------

    async def emit(
        self, local_room: str, event: str, data: Any, skip_user: str | None = None
    ) -> None:
        await self.emit_raw(local_room, event, encode_json(data), skip_user)

    async def emit_raw(
        self, local_room: str, event: str, raw: bytes, skip_user: str | None = None
    ) -> None:
        """Send an event whose payload is already JSON text to a local room.

        The Socket.IO packet is built once and handed to each socket's Engine.IO queue:
        no per-recipient task and no JSON work (python-socketio's own ``emit`` would decode
        nothing but re-encode the payload and start a task per recipient).
        """
        skip: set[str] = set()
        if skip_user is not None:
            skip = {sid for sid, _ in self._participants(channels.user_sio_room(skip_user))}
        packet = _event_packet(event, raw)
        for sid, eio_sid in self._participants(local_room):
            if sid not in skip:
                await self.sio.send_eio(eio_sid, packet)

    async def emit_to(self, sid: str, event: str, data: Any) -> None:
        """One socket, queued on its transport at once, like ``emit_raw``.

        Ordering hazard: python-socketio's ``emit`` queues from a task of its own, one loop
        iteration later.  A ``session`` sent that way could be overtaken by a live message that
        ``emit_raw`` queues meanwhile, although the session's ``last_seq`` does not count it.
        """
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        if eio_sid is not None:
            await self.sio.send_eio(eio_sid, _event_packet(event, encode_json(data)))

    def sids(self, local_room: str) -> list[str]:
        return [sid for sid, _ in self._participants(local_room)]

    def enter(self, sid: str, local_room: str) -> None:
        self.sio.manager.basic_enter_room(sid, NAMESPACE, local_room)

    def leave(self, sid: str, local_room: str) -> None:
        self.sio.manager.basic_leave_room(sid, NAMESPACE, local_room)

    async def disconnect(self, local_room: str, reason: str) -> None:
        for sid, _ in self._participants(local_room):
            await self.sio.disconnect(sid)

    def _participants(self, local_room: str) -> list[tuple[str, str]]:
        return list(self.sio.manager.get_participants(NAMESPACE, local_room))

    async def close_all(self, timeout: float = 5.0) -> int:
        """Drop every Engine.IO connection without a CLOSE packet.

        Clients then see a lost transport ("transport close"), which both the JS client and
        python-socketio answer by reconnecting (through the load balancer, to another node).
        A CLOSE packet or a Socket.IO DISCONNECT would read as "server disconnect", after
        which clients deliberately stay away.
        """
        sockets = list(self.sio.eio.sockets.values())
        for sock in sockets:
            # None ends engineio's writer: it closes the websocket (a WS close frame, not an
            # Engine.IO CLOSE) or answers a pending long-poll.  abort: no CLOSE packet either.
            sock.queue.put_nowait(None)
        if sockets:
            closing = [sock.close(wait=False, abort=True) for sock in sockets]
            try:
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), timeout)
            except TimeoutError:
                log.warning("some sockets did not close within %.1f s", timeout)
        return len(sockets)

    # --- connection lifecycle ------------------------------------------------------------------

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any) -> bool:
        token = auth.get("token") if isinstance(auth, dict) else None
        if token is None:
            token = session_cookie(environ.get("HTTP_COOKIE", ""))  # never a service token
        _forget_headers(environ)
        try:
            await self.connections.open(sid, token)
        except ChatError as exc:
            raise RefusedError(exc) from None
        except Exception:
            log.exception("connect failed")
            raise RefusedError(internal()) from None
        return True

    async def _on_connected(self, sid: str) -> None:
        conn = self.connections.by_sid.get(sid)
        if conn is None:
            return
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        if eio_sid not in self.sio.eio.sockets:
            # The transport went away while the connect handler awaited; python-socketio
            # skips the disconnect handler for such sockets, so clean up here.
            await self._disconnect(sid, "transport closed during connect")
            await self.sio.manager.disconnect(sid, NAMESPACE)
            return
        if conn.ended is not None:
            # Expired or revoked during the handshake (see chat/core/lifetime.py): told why
            # instead of being told it is in session.
            await self.emit_to(sid, SESSION_END, session_end(conn.ended))
            await self.sio.disconnect(sid)
            return
        await self.emit_to(sid, "session", self.connections.enter(conn))

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        self._release_long_poll(sid)
        conn = self.connections.by_sid.get(sid)
        if conn is None:
            return
        try:
            await self.connections.close(conn)
        except Exception:
            log.exception("disconnect cleanup failed")

    def _release_long_poll(self, sid: str) -> None:
        """Answer a long-poll still pending for a closing socket.

        engineio closes a socket on the client's CLOSE packet without waking the GET that is
        parked on its queue, which then holds a task (and the client's shutdown) for the whole
        ping timeout.  None wakes it with an empty answer.
        """
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        sock = self.sio.eio.sockets.get(eio_sid)
        if sock is not None and not sock.upgraded:
            sock.queue.put_nowait(None)

    # --- events ----------------------------------------------------------------------------

    async def _event(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        if self._closing:
            return {"ok": False, "error": unavailable("this node is shutting down").to_wire()}
        self._in_flight += 1
        self._idle.clear()
        try:
            return {"ok": True, **await self._dispatch(event, sid, args)}
        except ChatError as exc:
            return {"ok": False, "error": exc.to_wire()}
        except Exception:
            log.exception("event %r failed", event)
            return {"ok": False, "error": internal().to_wire()}
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def quiesce(self, timeout: float) -> None:
        """Refuse new events (retriable ``unavailable``) and wait for those in progress, so
        that no send is cut off between its write and its ack."""
        self._closing = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("%d events still running at shutdown", self._in_flight)

    async def _dispatch(self, event: str, sid: str, args: tuple[Any, ...]) -> dict[str, Any]:
        conn = self.connections.by_sid.get(sid)
        if conn is None:
            raise unauthorized("not connected")
        handler = self._events.get(event)
        if handler is None:
            raise invalid_request(f"unknown event {event!r}")
        if len(args) != 1 or not isinstance(args[0], dict):
            raise invalid_request("an event takes exactly one object argument")
        return await handler(conn, args[0])
