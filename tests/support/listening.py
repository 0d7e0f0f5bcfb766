"""A Socket.IO server of a test, on a real port: attached to an aiohttp app served on a free
port of 127.0.0.1 (the integration tests of the Socket.IO adapter, without a whole node)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web


@asynccontextmanager
async def listening(sio: Any) -> AsyncIterator[int]:
    """Serve ``sio`` until the block ends; yields the port."""
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()
