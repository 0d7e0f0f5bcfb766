"""One pipelined RESP3 connection to one Redis server, as an asyncio protocol.

What the cluster pipeline writes goes out at once, however many batches are already waiting
for their replies, and each reply is matched to its command by order (a Redis connection
answers in the order it was asked).  A batch is one write and one future for all its replies:
no task, no stream reader, no per-reply coroutine (redis-py's connections cost about twice
this one's CPU per round trip, measured against the same server).

Guarantees:
- ``send`` either writes the batch or raises ``ConnectionError`` (the connection is closed).
- Every batch's future ends: with its replies (error replies are values: redis-py's exception
  classes, ``MovedError``, ``NoScriptError``...), or with ``ConnectionError`` when the
  connection is lost, or ``TimeoutError`` (redis-py's) when the oldest batch waited longer
  than ``timeout``.  Either failure fails every batch in flight and closes the connection
  for good: a reply that may still arrive must never be matched to a later command.
- Nothing here retries or reconnects: the owner opens a new connection.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, cast

import hiredis
from redis._parsers.base import BaseParser
from redis.exceptions import AuthenticationError, ConnectionError, InvalidResponse
from redis.exceptions import TimeoutError as RedisTimeoutError

from chat.adapters.redis_common import KEEPALIVE, RedisAccess, pack


def tls_context(access: RedisAccess) -> ssl.SSLContext:
    """Server certificate and host name always verified (against ``ca_file``, else the
    system's CAs); a client certificate where one is configured."""
    context = ssl.create_default_context(cafile=access.ca_file or None)
    if access.cert_file:
        context.load_cert_chain(access.cert_file, access.key_file or None)
    return context


class RespConnection(asyncio.Protocol):
    def __init__(
        self, name: str, timeout: float, on_close: Callable[[RespConnection], None] | None = None
    ) -> None:
        self.name = name
        self._on_close = on_close
        self._timeout = timeout
        self._reader = hiredis.Reader(
            protocolError=InvalidResponse, replyError=BaseParser.parse_error
        )
        self._transport: asyncio.Transport | None = None
        #: Batches in flight, oldest first: [replies expected, replies so far, future, sent at].
        self._pending: deque[list[Any]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self.closed = False

    @classmethod
    async def open(
        cls, host: str, port: int, *, access: RedisAccess, client_name: str, timeout: float,
        connect_timeout: float = 2.0, on_close: Callable[[RespConnection], None] | None = None,
    ) -> RespConnection:  # fmt: skip
        """Connected, authenticated (``HELLO 3 AUTH``) and named; raises ``ConnectionError``
        (unreachable, or a handshake that failed), ``AuthenticationError`` (a wrong or missing
        password) or ``ssl.SSLCertVerificationError``.  ``on_close`` is called once the
        connection is closed, whatever closed it."""
        loop, conn = asyncio.get_running_loop(), cls(f"{host}:{port}", timeout, on_close)
        context = tls_context(access) if access.tls else None
        try:
            async with asyncio.timeout(connect_timeout):
                transport, _ = await loop.create_connection(lambda: conn, host, port, ssl=context)
                hello: list[Any] = ["HELLO", 3]
                if access.password:
                    hello += ["AUTH", access.username or "default", access.password]
                (reply,) = await conn.send([[*hello, "SETNAME", client_name]])
        except TimeoutError as exc:
            conn.close()
            raise ConnectionError(f"connecting to {conn.name} timed out") from exc
        except OSError as exc:
            conn.close()
            if isinstance(exc, ssl.SSLCertVerificationError):
                raise
            raise ConnectionError(f"connecting to {conn.name} failed: {exc}") from exc
        except BaseException:  # cancelled, or the handshake's connection lost: nothing leaks
            conn.close()
            raise
        if isinstance(reply, Exception):  # redis-py's AuthenticationError is no ResponseError
            conn.close()
            if isinstance(reply, AuthenticationError) or "NOAUTH" in str(reply):
                raise AuthenticationError(str(reply))
            raise ConnectionError(f"{conn.name} refused the handshake: {reply}")
        sock = transport.get_extra_info("socket")
        if sock is not None:  # dead peers noticed even while nothing is sent
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for option, value in KEEPALIVE.items():
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
        return conn

    def send(self, commands: Sequence[Sequence[Any]]) -> asyncio.Future[list[Any]]:
        """Write ``commands`` now; the future of their replies, in order."""
        if self.closed or self._transport is None:
            raise ConnectionError(f"connection to {self.name} closed")
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        self._transport.write(pack(commands))
        self._pending.append([len(commands), [], future, self._loop.time()])
        if self._timer is None:
            self._timer = self._loop.call_at(self._loop.time() + self._timeout, self._check)
        return future

    def close(self) -> None:
        self._fail(ConnectionError(f"connection to {self.name} closed"))

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A uvloop transport is no ``asyncio.Transport`` subclass, hence a cast, not a check.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        pending = self._pending
        try:
            while (reply := self._reader.gets()) is not False:
                batch = pending[0]
                batch[1].append(reply)
                if len(batch[1]) == batch[0]:
                    pending.popleft()
                    if not batch[2].done():
                        batch[2].set_result(batch[1])
        except (InvalidResponse, IndexError) as exc:  # garbage, or a reply nobody asked for
            self._fail(ConnectionError(f"{self.name} sent what was not asked for: {exc!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection to {self.name} lost: {exc or 'closed'}"))

    # --- failure -------------------------------------------------------------------------

    def _check(self) -> None:
        """The watchdog: one timer per connection, not one per batch."""
        self._timer = None
        if not self._pending:
            return
        due = self._pending[0][3] + self._timeout
        if self._loop.time() >= due:
            self._fail(RedisTimeoutError(f"{self.name} did not answer in {self._timeout} s"))
        else:
            self._timer = self._loop.call_at(due, self._check)

    def _fail(self, exc: Exception) -> None:
        if not self.closed and self._on_close is not None:
            self._on_close(self)
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.abort()  # replies still under way must never be read
        while self._pending:
            future = self._pending.popleft()[2]
            if not future.done():
                future.set_exception(exc)


class RespSlot:
    """The connection to one server that its owner keeps: opened when first needed, once
    however many ask at the same time, and replaced after it closed (a closed connection is
    never handed out).  ``close`` ends it for good."""

    def __init__(
        self, host: str, port: int, *, access: RedisAccess, client_name: str, timeout: float,
        connect_timeout: float = 2.0,
    ) -> None:  # fmt: skip
        self.name = f"{host}:{port}"
        self._new = partial(
            RespConnection.open, host, port, access=access, client_name=client_name,
            timeout=timeout, connect_timeout=connect_timeout, on_close=self._forget,
        )  # fmt: skip
        #: The open connection, if any: the fast path of every send.
        self.conn: RespConnection | None = None
        self._opening: asyncio.Future[RespConnection] | None = None
        self._closed = False

    def opening(self) -> asyncio.Future[RespConnection]:
        """The future of a new connection (the one being opened, if any); it fails with
        ``ConnectionError`` if the connection is lost before it is handed out."""
        if self._closed:
            raise ConnectionError(f"connection to {self.name} closed for good")
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
            # Retrieved here too: a failed opening nobody awaits any more is no error to log.
            self._opening.add_done_callback(_retrieve)
        return self._opening

    async def connect(self) -> RespConnection:
        if self.conn is not None:
            return self.conn
        return await asyncio.shield(self.opening())

    def close(self) -> None:
        self._closed = True
        if self._opening is not None:
            self._opening.cancel()
        if self.conn is not None:
            self.conn.close()

    async def _open(self) -> RespConnection:
        try:
            conn = await self._new()
        finally:
            self._opening = None
        if conn.closed:  # lost at once: its on_close has run, so nothing would forget it
            raise ConnectionError(f"connection to {self.name} lost")
        self.conn = conn
        return conn

    def _forget(self, conn: RespConnection) -> None:
        if self.conn is conn:
            self.conn = None


def _retrieve(done: asyncio.Future[RespConnection]) -> None:
    if not done.cancelled():
        done.exception()
