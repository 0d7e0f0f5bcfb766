"""A python-socketio test client that records every event it receives.

Tests await events (``await client.next("message")``) instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import socketio

TIMEOUT = 10.0


async def call_unless_gone(
    sio: socketio.AsyncClient, gone: asyncio.Event, event: str, *args: Any, timeout: float
) -> Any:
    """Emit with an ack; ConnectionError at once if ``gone`` is set first (python-socketio
    itself would wait for the whole timeout)."""
    acked = asyncio.ensure_future(sio.call(event, *args, timeout=timeout))
    lost = asyncio.ensure_future(gone.wait())
    await asyncio.wait([acked, lost], return_when=asyncio.FIRST_COMPLETED)
    lost.cancel()
    if not acked.done():
        acked.cancel()
        raise ConnectionError(f"connection lost before the ack of {event!r}")
    return acked.result()


class Client:
    def __init__(self, **options: Any) -> None:
        self.sio = socketio.AsyncClient(reconnection=False, **options)
        self.queues: defaultdict[str, asyncio.Queue[Any]] = defaultdict(asyncio.Queue)
        self.order: list[str] = []  # every event's name, as received
        self.connect_error: Any = None
        self.disconnected = asyncio.Event()
        self.sio.on("*", self._record)
        self.sio.on("connect_error", self._refused)
        self.sio.on("disconnect", self._disconnected)

    async def _record(self, event: str, *args: Any) -> None:
        self.order.append(event)
        self.queues[event].put_nowait(args[0] if len(args) == 1 else args)

    async def _refused(self, data: Any = None) -> None:
        self.connect_error = data

    async def _disconnected(self, reason: Any = None) -> None:
        self.disconnected.set()
        self.queues["__disconnect__"].put_nowait(reason)

    async def connect(self, url: str, token: str | None, **kwargs: Any) -> Client:
        auth = {"token": token} if token is not None else None
        kwargs.setdefault("transports", ["websocket"])
        await self.sio.connect(url, auth=auth, wait_timeout=TIMEOUT, **kwargs)
        return self

    async def next(self, event: str, timeout: float = TIMEOUT) -> Any:
        return await asyncio.wait_for(self.queues[event].get(), timeout)

    def pending(self, event: str) -> list[Any]:
        """Everything received for ``event`` and not yet consumed."""
        queue = self.queues[event]
        return [queue.get_nowait() for _ in range(queue.qsize())]

    async def call(self, event: str, *args: Any, timeout: float = TIMEOUT) -> Any:
        return await call_unless_gone(self.sio, self.disconnected, event, *args, timeout=timeout)

    async def close(self) -> None:
        await self.sio.disconnect()


@contextlib.asynccontextmanager
async def connected(url: str, token: str | None, **kwargs: Any) -> AsyncIterator[Client]:
    client = Client()
    await client.connect(url, token, **kwargs)
    try:
        yield client
    finally:
        await client.close()
