"""A shard's subscription record: which channels this node wants, what its current connection
was asked, and what the server confirmed on it.  Bookkeeping only, no I/O (``shard.py`` owns
the connection), so its rules are tested without a server (tests/unit/test_shard_record.py).

The rules:

- ``wanted`` is this node's record and outlives connections; a new connection starts with
  nothing asked and nothing confirmed, and is asked for everything wanted.
- A channel is confirmed (live) only by the answer to the *last* command sent for it on this
  connection.  Commands on one connection are processed in order: while an ``UNSUBSCRIBE`` is
  unanswered the server is about to drop the channel, whatever it confirmed before, so a
  channel let go and wanted again waits for the answer to its new ``SUBSCRIBE``.
- A waiter for a channel resolves once the channel is confirmed, or once nobody wants it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable


class SubscriptionRecord:
    def __init__(self) -> None:
        self.wanted: set[str] = set()
        self.confirmed: set[str] = set()
        self._requested: set[str] = set()  # what this connection was asked for
        self._unanswered: dict[str, int] = {}  # commands sent per channel, not answered yet
        self._waiters: dict[str, asyncio.Future[None]] = {}

    @property
    def complete(self) -> bool:
        """Every wanted channel is live."""
        return self.wanted <= self.confirmed

    def want(self, channels: Iterable[str]) -> None:
        self.wanted.update(channels)

    def unwant(self, channels: Iterable[str]) -> None:
        for channel in channels:
            self.wanted.discard(channel)
            self._resolve(channel)  # nobody needs it any more

    def waiters(self, channels: Collection[str]) -> list[asyncio.Future[None]]:
        """A future per wanted channel not yet live, shared by everyone who waits for it."""
        pending = []
        for channel in channels:
            if channel in self.wanted and channel not in self.confirmed:
                waiter = self._waiters.get(channel)
                if waiter is None:
                    waiter = self._waiters[channel] = asyncio.get_running_loop().create_future()
                pending.append(waiter)
        return pending

    def to_send(self) -> tuple[list[str], list[str]]:
        """The channels to SUBSCRIBE and to UNSUBSCRIBE to bring the connection in line with
        ``wanted``, counted as sent (the caller sends them, in that order, or loses the
        connection)."""
        add = sorted(self.wanted - self._requested)
        drop = sorted(self._requested - self.wanted)
        self._requested = set(self.wanted)
        for channel in (*add, *drop):
            self._unanswered[channel] = self._unanswered.get(channel, 0) + 1
        self.confirmed.difference_update(drop)  # not live from the UNSUBSCRIBE on
        return add, drop

    def subscribed(self, channel: str) -> None:
        """The server answered a SUBSCRIBE of ``channel``."""
        if self._answered(channel):
            self.confirmed.add(channel)
            self._resolve(channel)

    def unsubscribed(self, channel: str) -> None:
        """The server answered an UNSUBSCRIBE of ``channel``."""
        self._answered(channel)
        self.confirmed.discard(channel)

    def new_connection(self) -> None:
        """A connection replaced (or lost): nothing asked, nothing live on it."""
        self._requested, self.confirmed, self._unanswered = set(), set(), {}

    def close(self) -> None:
        for waiter in self._waiters.values():
            waiter.cancel()
        self._waiters.clear()

    def _answered(self, channel: str) -> bool:
        """Count one answer for ``channel``; True when no later command for it is pending."""
        left = self._unanswered.get(channel, 1) - 1
        if left > 0:
            self._unanswered[channel] = left
            return False
        self._unanswered.pop(channel, None)
        return True

    def _resolve(self, channel: str) -> None:
        waiter = self._waiters.pop(channel, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
