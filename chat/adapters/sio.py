"""The Socket.IO adapter: with ``sio_server.py`` (the library's server, subclassed), the only
module that imports socketio.

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

from chat import channels
from chat.adapters import eio_tuning
from chat.adapters.sio_server import NAMESPACE, Json, Manager, Server, event_packet
from chat.core.connections import Conn, Connections
from chat.core.lifetime import SESSION_END, session_end
from chat.core.tokens import session_cookie
from chat.errors import ChatError, internal, invalid_request, unauthorized, unavailable
from chat.models import encode_json

log = logging.getLogger(__name__)

EventHandler = Callable[[Conn, dict[str, Any]], Awaitable[dict[str, Any]]]


class RefusedError(socketio.exceptions.ConnectionRefusedError):  # type: ignore[misc]
    """Refusal whose ``connect_error`` data is ``{code, message}``.

    The JS client exposes ``err.message`` and ``err.data``; python-socketio passes the whole
    dict.  Both find ``code`` and ``message``.
    """

    def __init__(self, error: ChatError) -> None:
        super().__init__(error.message)
        self.error_args = {**error.to_wire(), "data": error.to_wire()}


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
        self, *, origins: tuple[str, ...], max_payload: int, compression: bool = False,
        events_in_flight: int = Server.most_in_flight, queue_max: int = eio_tuning.QUEUED_MAX,
    ) -> None:  # fmt: skip
        self._allowed = set(origins)
        self._connections: Connections | None = None
        self._events: dict[str, EventHandler] = {}
        self._closing = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        manager = Manager()
        manager.on_connected = self._on_connected
        self.sio = Server(
            async_mode="aiohttp",
            client_manager=manager,
            json=Json,
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
        self.sio.most_in_flight = events_in_flight
        #: Whether engineio was tuned (eio_tuning.py), and so declines compression itself.
        self.tuned = eio_tuning.apply(self.sio.eio, compression=compression, queued_max=queue_max)

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
        packet = event_packet(event, raw)
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
            await self.sio.send_eio(eio_sid, event_packet(event, encode_json(data)))

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
