"""The client events of the protocol, independent of Socket.IO.

Each handler takes the calling socket's ``Conn`` and the payload object and returns the ack's
fields besides ``ok``; it raises ``ChatError`` for anything the client should be told.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from chat.core.connections import Conn
from chat.core.messaging import Messaging
from chat.core.payloads import DmIn, parse
from chat.models import to_wire

Handler = Callable[[Conn, dict[str, Any]], Awaitable[dict[str, Any]]]


class SocketApi:
    def __init__(self, messaging: Messaging) -> None:
        self._messaging = messaging

    def events(self) -> dict[str, Handler]:
        return {"dm": self.dm}

    async def dm(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, DmIn)
        message = await self._messaging.send_dm(conn.user.ref, req.to, req.text, req.cid)
        return {"message": to_wire(message)}
