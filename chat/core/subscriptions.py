"""The channels this node follows on behalf of its sockets.

Following a channel means: one reference more on its subscription (the broker counts them),
and, the first time, its ordering streams opened with baselines read *after* the subscription
is live (see ``ordering.py``).  Acquire and release of one channel are serialised by a lock:
otherwise a release racing an acquire could close the ordering state the acquire just
opened, and the messages arriving in between would be dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable

from chat.channels import channel_entity
from chat.core.ordering import Ordering
from chat.models import is_dm_room
from chat.ports import Broker, History, RoomStore

log = logging.getLogger(__name__)

#: History reads at once while catching up a shard's channels (thousands after an outage).
CATCH_UP_READS = 32

#: baselines(channel) -> {room: last seq}, read from history once the channel is live.
Baselines = Callable[[str], Awaitable[dict[str, int]]]


def history_baselines(rooms: RoomStore, history: History) -> Baselines:
    """The rooms whose messages travel on a channel, with their last seqs: a room's channel
    carries that room; a user's channel carries the user's DM rooms."""

    async def baselines(channel: str) -> dict[str, int]:
        kind, ident = channel_entity(channel)
        if kind == "room":
            return await history.last_seqs([ident])
        if kind == "presence":  # presence only: no room travels on it
            return {}
        dms = [r for r in await rooms.user_rooms(ident) if is_dm_room(r)]
        return await history.last_seqs(dms)

    return baselines


class Subscriptions:
    def __init__(self, broker: Broker, ordering: Ordering, baselines: Baselines) -> None:
        self._broker = broker
        self._ordering = ordering
        self._baselines = baselines
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._catching_up = asyncio.Semaphore(CATCH_UP_READS)
        broker.on_resubscribed(self.catch_up)

    async def catch_up(self, channels: Collection[str]) -> None:
        """Deliver what was published on ``channels`` while this node could not hear them (its
        shard connection was replaced): their rooms' last seqs, read now that the channels are
        live again, against the pointers.  A failed read leaves it to the next message's gap
        fill and to the clients' ``sync``."""

        async def one(channel: str) -> None:
            async with self._catching_up:
                try:
                    await self._ordering.catch_up(channel, await self._baselines(channel))
                except Exception as exc:
                    log.warning("catch-up of %s failed: %r", channel, exc)

        await asyncio.gather(*map(one, channels))

    async def acquire(self, channels: Iterable[str]) -> None:
        """Follow every channel, or none: when one fails, those taken are let go again (a
        failed handshake must not leave its channels followed for good)."""
        wanted = list(channels)
        results = await asyncio.gather(*map(self._acquire, wanted), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.release(c for c, r in zip(wanted, results, strict=True) if r is None)
            raise errors[0]

    async def release(self, channels: Iterable[str]) -> None:
        await asyncio.gather(*(self._release(channel) for channel in channels))

    @contextlib.asynccontextmanager
    async def _locked(self, channel: str) -> AsyncIterator[None]:
        """A lock per channel, dropped when its last user leaves (channels come and go)."""
        lock, users = self._locks.setdefault(channel, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[channel]

    async def _acquire(self, channel: str) -> None:
        async with self._locked(channel):
            self._ordering.opening(channel)
            if not await self._broker.subscribe([channel]):
                return  # followed already, and opened: the previous holder finished
            try:
                baselines = await self._baselines(channel)
            except BaseException:
                await self._broker.unsubscribe([channel])
                self._ordering.closed(channel)
                raise
            await self._ordering.opened(channel, baselines)

    async def _release(self, channel: str) -> None:
        async with self._locked(channel):
            if await self._broker.unsubscribe([channel]):
                self._ordering.closed(channel)
