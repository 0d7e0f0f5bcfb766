"""In-memory broker for unit tests of the logic above the broker (no Redis involved).

A ``MemoryHub`` plays the shards: every ``MemoryBroker`` attached to it is one node.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

from chat.ports import MessageHandler, Resubscribed
from chat.refcount import RefCounts


class MemoryHub:
    def __init__(self) -> None:
        self.subscribers: defaultdict[str, set[MemoryBroker]] = defaultdict(set)
        self.published: list[tuple[str, bytes]] = []
        #: While set, every publish fails (a shard that does not answer).
        self.down = False

    async def restore(self) -> None:
        """The shard is back: every node's connection was replaced and resubscribed."""
        self.down = False
        brokers = {b for subscribed in self.subscribers.values() for b in subscribed}
        for broker in brokers:
            await broker.resubscribed()


class MemoryBroker:
    def __init__(self, hub: MemoryHub, handler: MessageHandler) -> None:
        self._hub = hub
        self._handler = handler
        self.refs = RefCounts()
        self._on_resubscribed: Resubscribed | None = None

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
        if self._hub.down:
            raise ConnectionError("shard down")
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

    def on_resubscribed(self, callback: Resubscribed) -> None:
        self._on_resubscribed = callback

    async def resubscribed(self) -> None:
        if self._on_resubscribed is not None:
            await self._on_resubscribed(self.refs.channels())
