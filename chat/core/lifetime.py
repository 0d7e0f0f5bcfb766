"""Sockets do not outlive their token.  Each node ends its own sockets whose access token
expired or was revoked, and tells each why first: ``session_end {code, message}`` with
``token_expired`` (refresh the token and connect again) or ``token_revoked`` (sign in again),
then a server-side disconnect (after which Socket.IO clients do not reconnect by themselves).

Expiry: one sweep a second over a heap of ``(exp, sid)``; at 10k sockets a tick looks at the
top of the heap only, and there is no timer or task per socket.  Revocation: the ``revoke``
control message on the user's channel names a token (``jti``), a sign-in (``family``) or a
generation (``generation``: every token issued before a "log out everywhere").

A socket still in its handshake is not in its local rooms yet, so it is marked (``ended``)
instead, and ``SocketServer`` ends it where it would have entered them.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from chat import channels
from chat.core.controls import Revoke
from chat.errors import TOKEN_EXPIRED, TOKEN_REVOKED, unauthorized
from chat.ports import LocalDelivery

if TYPE_CHECKING:
    from chat.core.connections import Conn

log = logging.getLogger(__name__)

SESSION_END = "session_end"
_MESSAGES = {
    TOKEN_EXPIRED: "the access token expired: refresh it and connect again",
    TOKEN_REVOKED: "this sign-in has ended: sign in again",
}


def session_end(code: str) -> dict[str, str]:
    """The payload of ``session_end``."""
    return {"code": code, "message": _MESSAGES[code]}


def revoked_by(conn: Conn, notice: Revoke) -> bool:
    """Whether a ``revoke`` notice concerns the socket's token."""
    return (
        conn.jti == notice.jti
        or (bool(notice.family) and conn.family == notice.family)
        or (notice.generation is not None and conn.gen < notice.generation)
    )


class Lifetimes:
    def __init__(
        self,
        delivery: LocalDelivery,
        *,
        every: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._delivery = delivery
        self._every = every
        self._clock = clock
        self._deadlines: list[tuple[int, str]] = []  # a heap of (exp, sid)
        self._tracked: dict[str, Conn] = {}
        self._task: asyncio.Task[None] | None = None
        self.ended = {TOKEN_EXPIRED: 0, TOKEN_REVOKED: 0}

    def admit(self, exp: int) -> None:
        """Refuse a token that expired, although within the verifier's clock leeway: the socket
        would be ended at the next sweep, and the client is better told now, at connect."""
        if exp <= self._clock():
            raise unauthorized("token expired", reason=TOKEN_EXPIRED)

    def track(self, conn: Conn) -> None:
        self._tracked[conn.sid] = conn
        heapq.heappush(self._deadlines, (conn.exp, conn.sid))
        if len(self._deadlines) > 2 * len(self._tracked) + 1024:
            # Entries of closed sockets wait for their deadline; with many short connections
            # they would pile up for a whole token lifetime.
            self._deadlines = [(c.exp, sid) for sid, c in self._tracked.items()]
            heapq.heapify(self._deadlines)

    def forget(self, conn: Conn) -> None:
        self._tracked.pop(conn.sid, None)

    async def sweep(self) -> int:
        """End the sockets whose token expired; how many."""
        now = self._clock()
        due = []
        while self._deadlines and self._deadlines[0][0] <= now:
            exp, sid = heapq.heappop(self._deadlines)
            conn = self._tracked.get(sid)
            if conn is not None and conn.exp == exp:
                due.append(conn)
        await self.end(due, TOKEN_EXPIRED)
        return len(due)

    async def revoke(self, conns: Iterable[Conn], notice: Revoke) -> int:
        """End the sockets (of the user the notice came for) that it concerns; how many."""
        matched = [conn for conn in conns if revoked_by(conn, notice)]
        await self.end(matched, TOKEN_REVOKED)
        return len(matched)

    async def end(self, conns: Iterable[Conn], code: str) -> None:
        rooms = set()
        for conn in conns:
            if conn.ended is None:
                conn.ended = code
                self.ended[code] += 1
            rooms.add(channels.token_sio_room(conn.jti))  # one token: one fate for its sockets
        for room in rooms:
            await self._delivery.emit(room, SESSION_END, session_end(code))
            await self._delivery.disconnect(room, code)

    # --- the sweep task, started and stopped with the node ------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._sweeping())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sweeping(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                ended = await self.sweep()
            except Exception:
                log.exception("the expiry sweep failed")
                continue
            if ended:
                log.debug("ended %d sockets past their expiry", ended)
