"""Batching of concurrent Redis calls: what many coroutines submit in one event-loop iteration
goes out together, in one write and one round trip per server.

Under load a node handles hundreds of sends at once, each needing a rate-limit check, an
append and one or two publishes.  Sent one by one, every call costs a system call and a
round trip; batched, the cost is shared.  With one caller at a time nothing waits: the batch
is flushed on the next loop iteration, with one item in it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: flush(items) -> one result (or exception) per item, in order.
Flush = Callable[[list[T]], Awaitable[list[R | BaseException]]]


class Batcher(Generic[T, R]):
    def __init__(self, flush: Flush[T, R], *, max_batch: int = 512) -> None:
        self._flush = flush
        self._max = max_batch
        self._items: list[T] = []
        self._waiters: list[asyncio.Future[R]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        return await self.enqueue(item)

    def enqueue(self, item: T) -> asyncio.Future[R]:
        """``submit`` without the coroutine: the future of the item's result.  Several items
        awaited together (``asyncio.gather`` of futures) cost no task each."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[R] = loop.create_future()
        self._items.append(item)
        self._waiters.append(waiter)
        if len(self._items) >= self._max:
            self._start()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start)
        return waiter

    def _start(self) -> None:
        self._scheduled = False
        if not self._items:
            return
        items, waiters = self._items, self._waiters
        self._items, self._waiters = [], []
        task = asyncio.create_task(self._run(items, waiters))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, items: list[T], waiters: list[asyncio.Future[R]]) -> None:
        try:
            results = await self._flush(items)
        except BaseException as exc:  # the whole batch failed: every caller gets the error
            results = [exc] * len(items)
            if isinstance(exc, asyncio.CancelledError):
                for waiter in waiters:
                    waiter.cancel()
                raise
        for waiter, result in zip(waiters, results, strict=True):
            if waiter.done():  # the caller gave up (timeout, cancellation)
                continue
            if isinstance(result, BaseException):
                waiter.set_exception(result)
            else:
                waiter.set_result(result)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
