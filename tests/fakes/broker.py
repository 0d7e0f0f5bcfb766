"""In-memory broker for unit tests of the logic above the broker (no Redis involved).

A ``MemoryHub`` plays the shards: every ``MemoryBroker`` attached to it is one node.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

from chat.ports import MessageHandler
from chat.refcount import RefCounts


class MemoryHub:
    def __init__(self) -> None:
        self.subscribers: defaultdict[str, set[MemoryBroker]] = defaultdict(set)
        self.published: list[tuple[str, bytes]] = []


class MemoryBroker:
    def __init__(self, hub: MemoryHub, handler: MessageHandler) -> None:
        self._hub = hub
        self._handler = handler
        self.refs = RefCounts()

    async def subscribe(self, channels: Collection[str]) -> list[str]:
        first = self.refs.acquire(channels)
        for channel in first:
            self._hub.subscribers[channel].add(self)
        return first

    async def unsubscribe(self, channels: Collection[str]) -> list[str]:
        last = self.refs.release(channels)
        for channel in last:
            self._hub.subscribers[channel].discard(self)
        return last

    async def publish(self, channel: str, payload: bytes) -> None:
        self._hub.published.append((channel, payload))
        for broker in list(self._hub.subscribers.get(channel, ())):
            await broker._handler(channel, payload)

    async def publish_each(
        self, channels: Collection[str], payload: bytes
    ) -> list[BaseException | None]:
        results: list[BaseException | None] = []
        for channel in channels:
            try:
                await self.publish(channel, payload)
                results.append(None)
            except Exception as exc:
                results.append(exc)
        return results

    def is_ready(self) -> bool:
        return True
