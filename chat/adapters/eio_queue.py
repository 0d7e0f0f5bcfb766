"""The queue of each Engine.IO socket (``eio_tuning.PacketQueue``): what python-engineio asks
of it, lighter than ``asyncio.Queue``, and the bytes it holds, which ``eio_tuning.send``
bounds.  Handed to engineio through its documented ``create_queue`` hook."""

from __future__ import annotations

import asyncio
from typing import Any


class PacketQueue:
    """What python-engineio asks of a socket's queue: ``put``, ``put_nowait``, ``get``,
    ``get_nowait``, ``empty``, ``qsize``, ``task_done``, ``join``; unbounded, FIFO, with
    ``asyncio.Queue``'s semantics (a getter cancelled after it was woken wakes the next)."""

    __slots__ = (
        "_getters", "_head", "_items", "_joiners", "_unfinished", "corked", "dropped", "queued",
        "websocket", "writer_idle",
    )  # fmt: skip

    def __init__(self) -> None:
        #: ``send``'s state, here rather than on the socket (whose attributes share one key
        #: table across instances only while every socket has the same ones): the socket's
        #: websocket, whether its writer is parked in ``poll``, the packets kept this turn.
        self.websocket: Any = None  # eio_tuning.PlainWebSocket, once upgraded
        self.writer_idle = False
        self.corked: list[Any] | None = None
        self.dropped = False  # set by ``drop``: nothing more is kept
        self.queued = 0  # bytes of the packets held, corked ones too (``send`` bounds it)
        self._items: list[Any] = []
        self._head = 0  # items before it are taken; compacted as the queue drains
        self._getters: list[asyncio.Future[None]] = []
        self._unfinished = 0
        self._joiners: list[asyncio.Future[None]] = []

    def qsize(self) -> int:
        return len(self._items) - self._head

    def empty(self) -> bool:
        return self._head >= len(self._items)

    def put_nowait(self, item: Any) -> None:
        if self.dropped and item is not None:  # only the writer's end, once dropped
            return
        self._items.append(item)
        self.queued += packet_size(item)
        self._unfinished += 1
        _wake_one(self._getters)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def put_front(self, items: list[Any]) -> None:
        """Items that were due before everything queued (``send``'s corked packets)."""
        if self.dropped:
            return
        self._items[self._head : self._head] = items
        self.queued += sum(map(packet_size, items))
        self._unfinished += len(items)
        _wake_one(self._getters)

    def get_nowait(self) -> Any:
        if self.empty():
            raise asyncio.QueueEmpty
        item = self._items[self._head]
        self.queued -= packet_size(item)
        self._head += 1
        if self._head == len(self._items):  # drained: the usual case, cheap to reset
            self._items.clear()
            self._head = 0
        elif self._head > 64 and 2 * self._head > len(self._items):
            del self._items[: self._head]
            self._head = 0
        return item

    async def get(self) -> Any:
        while self.empty():
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()  # in case it is not done yet
                if getter in self._getters:
                    self._getters.remove(getter)
                if not self.empty() and not getter.cancelled():
                    _wake_one(self._getters)  # it was woken for an item it will not take
                raise
        return self.get_nowait()

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if not self._unfinished:
            joiners, self._joiners = self._joiners, []
            for joiner in joiners:
                if not joiner.done():
                    joiner.set_result(None)

    def drop(self) -> None:
        """Let go of every packet held, and of every one put later (its socket is being
        closed: for not reading them, or for what its client sent)."""
        self.dropped = True
        self._items, self._head, self.queued = [], 0, 0
        if self.corked:
            self.corked = []
        while self._unfinished:
            self.task_done()

    async def join(self) -> None:
        if self._unfinished:
            joiner = asyncio.get_running_loop().create_future()
            self._joiners.append(joiner)
            await joiner


def packet_size(packet: Any) -> int:
    """What a packet holds: the length of its text (or bytes)."""
    data = getattr(packet, "data", None)
    return len(data) if isinstance(data, (str, bytes)) else 0


def _wake_one(waiters: list[asyncio.Future[None]]) -> None:
    while waiters:
        waiter = waiters.pop(0)
        if not waiter.done():
            waiter.set_result(None)
            return
