"""The small interfaces the use-case layer depends on.

Adapters (Redis, Socket.IO) implement them; ``chat/app.py`` wires concrete classes in.  Tests
of the logic above them use the in-memory implementations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, Protocol

from chat.models import Account, Message, UserRecord, UserRef

#: Called by a broker for every payload received on a subscribed channel, in arrival order
#: per shard.  It is awaited before the next payload of that shard is read, which gives
#: per-channel FIFO delivery; it must be quick and must not raise.
MessageHandler = Callable[[str, bytes], Awaitable[None]]


class Broker(Protocol):
    """Cross-node pub/sub with per-node reference counting of channel subscriptions."""

    async def subscribe(self, channels: Collection[str]) -> None:
        """Count one more local interest in each channel; return once each is subscribed."""

    async def unsubscribe(self, channels: Collection[str]) -> None:
        """Drop one local interest; the last one unsubscribes the channel."""

    async def publish(self, channel: str, payload: bytes) -> None:
        """Send ``payload`` to every node subscribed to ``channel``."""

    def is_ready(self) -> bool:
        """True while every shard is connected and every wanted channel is subscribed."""


class LocalDelivery(Protocol):
    """Delivery to the sockets connected to *this* node (the Socket.IO adapter)."""

    async def emit(self, local_room: str, event: str, data: Any) -> None: ...

    async def disconnect(self, local_room: str, reason: str) -> None: ...


class History(Protocol):
    """Durable, ordered message log per room."""

    async def append(
        self, message_id: str, room: str, sender: UserRef, text: str, cid: str | None, token: str
    ) -> tuple[Message, bool]:
        """Store with the room's next seq; a repeated ``token`` returns the first result
        (and False)."""

    async def last_seq(self, room: str) -> int: ...

    async def page(
        self, room: str, *, before: int | None, after: int | None, limit: int
    ) -> tuple[list[Message], bool]: ...

    async def between(self, room: str, after: int, upto: int, limit: int) -> list[Message]: ...


class AccountStore(Protocol):
    async def create(self, user: UserRecord, email_key: str, password_hash: str) -> bool:
        """Store a new user; False when the email is already taken."""

    async def account(self, email_key: str) -> Account | None: ...

    async def set_password_hash(self, email_key: str, password_hash: str) -> None: ...

    async def user(self, user_id: str) -> UserRecord | None: ...

    async def users(self, user_ids: Iterable[str]) -> dict[str, UserRecord]: ...

    async def set_name(self, user_id: str, name: str) -> None: ...


class Limits(Protocol):
    """Limits shared by every node."""

    async def take(self, scope: str, ident: str, rate: float, burst: int) -> float:
        """Take a token; 0, or the seconds to wait for one."""

    async def login(self, email_key: str, op: str) -> float:
        """``check``/``fail``/``ok`` an account's login; the cool-down seconds left."""

    async def revoke(self, jti: str, seconds: float) -> None: ...

    async def is_revoked(self, jti: str) -> bool: ...
