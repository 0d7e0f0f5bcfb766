"""A socket's life on this node: authenticate, follow its channels, and let go of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chat import keys
from chat.core.tokens import TokenService
from chat.models import UserRef, to_wire
from chat.ports import Broker


@dataclass(frozen=True)
class Conn:
    """One connected socket, as the use-case layer sees it."""

    sid: str
    user: UserRef
    jti: str
    exp: int
    #: Local Socket.IO rooms the socket sits in (named like the channels they mirror).
    local_rooms: tuple[str, ...]
    #: Pub/sub channels this socket holds an interest in (reference-counted by the broker).
    channels: tuple[str, ...]


class Connections:
    def __init__(self, tokens: TokenService, broker: Broker) -> None:
        self._tokens = tokens
        self._broker = broker

    async def open(self, sid: str, token: object) -> Conn:
        """Authenticate a handshake and subscribe what the socket needs before it is told
        it is connected, so nothing sent to it afterwards can be missed."""
        claims = self._tokens.verify(token)
        user = UserRef(claims.sub, claims.name or claims.sub)
        channels = (keys.user_channel(user.id),)
        await self._broker.subscribe(channels)
        return Conn(
            sid=sid,
            user=user,
            jti=claims.jti,
            exp=claims.exp,
            local_rooms=(keys.user_sio_room(user.id), keys.token_sio_room(claims.jti)),
            channels=channels,
        )

    async def close(self, conn: Conn) -> None:
        await self._broker.unsubscribe(conn.channels)

    def session(self, conn: Conn) -> dict[str, Any]:
        return {"user": to_wire(conn.user), "rooms": []}
