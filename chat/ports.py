"""The small interfaces the use-case layer depends on.

Adapters (Redis, Socket.IO) implement them; ``chat/app.py`` wires concrete classes in.  Tests
of the logic above them use the in-memory implementations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol

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


class MessageStore(Protocol):
    """Durable, ordered message log per room."""

    async def next_seq(self, room: str) -> int:
        """Hand out the room's next gap-free sequence number."""
