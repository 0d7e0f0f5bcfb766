"""One read shared by every caller that asked while the previous one was in flight.

For an anonymous route that anyone may call as often as they like (``GET /message/``): however
many requests arrive, a node has at most one read of it in flight, and a flood costs one read
per round trip instead of one per request.  Invariant: a caller gets the result of a read that
began after its call, never of one already in flight (that read may predate a write the caller
saw acknowledged just before), so sharing never serves anything older than an unshared read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedRead(Generic[T]):
    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._running: asyncio.Future[T] | None = None  # the read in flight
        self._next: asyncio.Future[T] | None = None  # for those who came during it

    async def __call__(self) -> T:
        if self._running is None:
            self._running = self._start()
            wanted = self._running
        else:  # begun before this call: wait for the one after it
            if self._next is None:
                self._next = asyncio.get_running_loop().create_future()
            wanted = self._next
        # Shielded: a caller that goes away must not cancel the read the others wait for.
        return await asyncio.shield(wanted)

    def _start(self) -> asyncio.Future[T]:
        running = asyncio.ensure_future(self._read())
        running.add_done_callback(self._ended)
        return running

    def _ended(self, _: asyncio.Future[T]) -> None:
        waiting, self._next, self._running = self._next, None, None
        if waiting is not None:
            self._running = self._start()
            self._running.add_done_callback(lambda read: _settle(waiting, read))


def _settle(future: asyncio.Future[T], read: asyncio.Future[T]) -> None:
    if read.cancelled():
        future.cancel()
    elif (error := read.exception()) is not None:
        future.set_exception(error)
    else:
        future.set_result(read.result())
