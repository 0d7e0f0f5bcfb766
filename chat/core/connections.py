"""A socket's life on this node: authenticate, follow its channels, and let go of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chat import keys
from chat.core.accounts import Accounts
from chat.models import UserRecord
from chat.ports import Broker, History

LOBBY = "lobby"


@dataclass(frozen=True)
class Conn:
    """One connected socket, as the use-case layer sees it."""

    sid: str
    user: UserRecord
    jti: str
    exp: int
    #: Local Socket.IO rooms the socket sits in (named like the channels they mirror).
    local_rooms: tuple[str, ...]
    #: Pub/sub channels this socket holds an interest in (reference-counted by the broker).
    channels: tuple[str, ...]


class Connections:
    def __init__(self, accounts: Accounts, broker: Broker, history: History) -> None:
        self._accounts = accounts
        self._broker = broker
        self._history = history

    async def open(self, sid: str, token: object) -> Conn:
        """Authenticate a handshake and subscribe what the socket needs before it is told
        it is connected, so nothing sent to it afterwards can be missed."""
        claims = await self._accounts.authenticate(token)
        user = await self._accounts.me(claims.sub)
        channels = (keys.user_channel(user.id), keys.room_channel(LOBBY))
        await self._broker.subscribe(channels)
        return Conn(
            sid=sid,
            user=user,
            jti=claims.jti,
            exp=claims.exp,
            local_rooms=(
                keys.user_sio_room(user.id),
                keys.token_sio_room(claims.jti),
                keys.room_sio_room(LOBBY),
            ),
            channels=channels,
        )

    async def close(self, conn: Conn) -> None:
        await self._broker.unsubscribe(conn.channels)

    async def session(self, conn: Conn) -> dict[str, Any]:
        lobby = {"id": LOBBY, "name": "Lobby", "private": False}
        lobby["last_seq"] = await self._history.last_seq(LOBBY)
        return {"user": conn.user.private(), "rooms": [lobby]}
