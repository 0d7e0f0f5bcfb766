"""The node's broker over the pub/sub shards: channel -> shard by the consistent-hash ring.

Subscriptions are reference-counted per node: the first local interest in a channel
subscribes it on its shard, the last one gone unsubscribes it.  Many sockets of one user, or
many local members of one room, therefore cost one subscription on one shard.

A payload for a channel that no other node follows is handed to this node's handler instead
of being published (``peers.py`` says how the nodes know), one loop iteration later, so that a
sender's acknowledgement still goes out before the copy of its own message.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Collection, Mapping

from chat import channels
from chat.adapters.redis_common import RedisAccess
from chat.adapters.shards.layout import Layout, Routing
from chat.adapters.shards.peers import Peers
from chat.adapters.shards.shard import Shard
from chat.ports import MessageHandler, Resubscribed
from chat.refcount import RefCounts

log = logging.getLogger(__name__)


class ShardedBroker:
    def __init__(
        self,
        shard_urls: Mapping[str, str],
        handler: MessageHandler,
        *,
        node_id: str,
        subscribe_timeout: float = 5.0,
        ping_interval: float = 1.0,
        dead_after: float = 5.0,
        access: RedisAccess | None = None,
    ) -> None:
        self._routing = Routing(Layout(0, dict(shard_urls)))
        self._handler = handler
        self.peers = Peers(
            node_id, handler, self._publish, self._generation, tracked=channels.is_user_channel
        )
        self.local_deliveries = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._shard_options = {
            "node_id": node_id, "ping_interval": ping_interval, "dead_after": dead_after,
            "access": access,
        }  # fmt: skip
        self.shards = {name: self._new_shard(name, url) for name, url in shard_urls.items()}
        self.refs = RefCounts()
        self._subscribe_timeout = subscribe_timeout
        self._on_resubscribed: Resubscribed | None = None

    def _new_shard(self, name: str, url: str) -> Shard:
        shard = Shard(name, url, self.peers.on_payload, **self._shard_options)  # type: ignore[arg-type]
        shard.on_resubscribed = self._resubscribed
        return shard

    def adopt(self, layout: Layout) -> None:
        """Start on ``layout`` (the shard set's record, which wins over ``CHAT_SHARDS``), maybe
        in the middle of a change: then this node receives and publishes as the others do."""
        if any(shard.connected for shard in self.shards.values()) or self.refs.channels():
            raise RuntimeError("adopt() is for a broker that has not started")
        self._routing = Routing(layout)
        self.shards = {name: self._new_shard(name, url) for name, url in layout.urls.items()}

    async def start(self, timeout: float) -> None:
        """Start every shard's listener and wait until each one is connected, or refused us
        (a wrong password or an untrusted certificate is reported at once: waiting would not
        mend it)."""
        for shard in self.shards.values():
            shard.start()
        waits = [
            shard.wait_until(lambda s: s.connected or s.refused is not None)
            for shard in self.shards.values()
        ]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout)
        except TimeoutError:
            down = [s.name for s in self.shards.values() if not s.connected]
            raise RuntimeError(f"pub/sub shards not reachable after {timeout} s: {down}") from None
        refused = [s.refused for s in self.shards.values() if s.refused and not s.connected]
        if refused:
            raise RuntimeError("; ".join(refused))

    async def stop(self) -> None:
        await self.peers.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(shard.stop() for shard in self.shards.values()))

    def shard_for(self, channel: str) -> Shard:
        """The shard ``channel`` is published on."""
        return self.shards[self._routing.publish_on(channel)]

    def _by_shard(
        self, channels: Collection[str], routing: Routing | None = None
    ) -> dict[Shard, list[str]]:
        """The channels to receive on each shard (two shards for a channel that moves)."""
        grouped: defaultdict[Shard, list[str]] = defaultdict(list)
        for channel in channels:
            for name in (routing or self._routing).receive_on(channel):
                grouped[self.shards[name]].append(channel)
        return grouped

    @property
    def layout(self) -> Layout:
        return self._routing.layout

    async def apply(self, layout: Layout) -> bool:
        """Move to the next step of a change of the shard set (``layout.py``); True once every
        followed channel is subscribed wherever the step receives it.  The caller (the node's
        watcher of the shard set) acknowledges the step only then."""
        before, after = self._routing, Routing(layout)
        for name, url in layout.urls.items():
            if name not in self.shards:
                self.shards[name] = shard = self._new_shard(name, url)
                shard.start()
        followed = self.refs.channels()
        gained, lost = self._by_shard(followed, after), self._by_shard(followed, before)
        for shard, group in gained.items():
            shard.want(set(group) - set(lost.get(shard, ())))
        self._routing = after
        moved = [ch for ch in followed if before.publish_on(ch) != after.publish_on(ch)]
        waits = [shard.wait_subscribed(group) for shard, group in gained.items()]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), self._subscribe_timeout)
        except TimeoutError:
            return False
        for shard, group in lost.items():
            shard.unwant(set(group) - set(gained.get(shard, ())))
        await self._retire(set(self.shards) - layout.urls.keys())
        if not after.changing and moved:  # who else follows them, learnt on their new shard
            self.peers.forget(moved)
            self.peers.expect(moved)
            await self.peers.announce(moved)
        return True

    async def _retire(self, names: set[str]) -> None:
        for name in names:
            await self.shards.pop(name).stop()

    async def subscribe(self, channels: Collection[str]) -> list[str]:
        """Count the interest and wait (bounded) until every channel is subscribed.

        Every caller waits, not only the first: a second socket of a user must not be told it
        is connected while the first socket's SUBSCRIBE is still in flight.  On timeout (a shard
        is down) the interest stays recorded and the listener subscribes when the shard is back.
        """
        first = self.refs.acquire(channels)
        self.peers.expect(first)
        for shard, group in self._by_shard(first).items():
            shard.want(group)
        waits = [shard.wait_subscribed(chs) for shard, chs in self._by_shard(channels).items()]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), self._subscribe_timeout)
        except TimeoutError:
            log.warning("subscription not confirmed within %.1f s", self._subscribe_timeout)
        # Before the caller reads its baselines: see the invariant in peers.py.
        await self.peers.announce(first)
        await self.peers.settled(channels)
        return first

    async def unsubscribe(self, channels: Collection[str]) -> list[str]:
        last = self.refs.release(channels)
        for shard, group in self._by_shard(last).items():
            shard.unwant(group)
        self.peers.forget(last)
        return last

    async def publish(self, channel: str, payload: bytes) -> None:
        (error,) = await self.publish_each([channel], payload)
        if error is not None:  # callers of a single publish decide what a failure means
            raise error

    async def publish_each(
        self, channels: Collection[str], payload: bytes
    ) -> list[BaseException | None]:
        # While the shard set changes, the nodes know nothing of each other on a moved channel.
        here = [] if self._routing.changing else [ch for ch in channels if self.peers.alone(ch)]
        # Futures, not coroutines: gathering them starts no task per channel (hot path).
        pending = [
            self.shard_for(ch).enqueue_publish(ch, payload) for ch in channels if ch not in here
        ]
        results = list(await asyncio.gather(*pending, return_exceptions=True))
        if here:
            self._deliver_here(here, payload)
        found = iter(r if isinstance(r, BaseException) else None for r in results)
        return [None if ch in here else next(found) for ch in channels]

    def _deliver_here(self, channels: list[str], payload: bytes) -> None:
        async def deliver() -> None:
            for channel in channels:
                await self._handler(channel, payload)  # never raises (MessageHandler)

        self.local_deliveries += len(channels)
        self._spawn(deliver())

    def on_resubscribed(self, callback: Resubscribed) -> None:
        self._on_resubscribed = callback

    def _resubscribed(self, channels: frozenset[str]) -> None:
        if self._on_resubscribed is not None:
            self._spawn(self._on_resubscribed(channels))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, channel: str, payload: bytes) -> int:
        return int(await self.shard_for(channel).publish(channel, payload))

    def _generation(self, channel: str) -> int | None:
        return self.shard_for(channel).generation(channel)

    async def wait_ready(self) -> None:
        """Return once every shard is connected with all its wanted channels subscribed."""
        await asyncio.gather(*(s.wait_until(Shard.is_ready) for s in self.shards.values()))

    async def subscribers(self, channels: Collection[str]) -> dict[str, int]:
        """How many nodes follow each channel (``PUBSUB NUMSUB`` on its shard)."""
        counts: dict[str, int] = {}
        for shard, group in self._by_shard(channels).items():
            counts.update(await shard.numsub(group))
        return counts

    def is_ready(self) -> bool:
        return all(shard.is_ready() for shard in self.shards.values())

    def status(self) -> dict[str, dict[str, object]]:
        return {
            name: {
                "connected": shard.connected,
                "ready": shard.is_ready(),
                "channels": len(shard.subscribed),
                "reconnects": shard.reconnects,
                "refused": shard.refused is not None,
                "publish_failures": shard.publisher.failures,
                "publish_backlog": shard.publisher.waiting,
                "publish_dropped": shard.publisher.dropped,
            }
            for name, shard in self.shards.items()
        }
