"""The framework floor for bench/idle.py: python-socketio on aiohttp and uvloop with no
application code at all (no auth, no rooms, no Redis), websocket compression declined as the
chat server does.  What one idle connection costs here, the chat server cannot go below
without changing those libraries.

    python bench/idle_floor.py <port>
"""

from __future__ import annotations

import asyncio
import sys

import socketio
import uvloop
from aiohttp import web


@web.middleware
async def no_compression(request: web.Request, handler):  # type: ignore[no-untyped-def]
    if "Sec-WebSocket-Extensions" in request.headers:
        headers = request.headers.copy()
        del headers["Sec-WebSocket-Extensions"]
        request = request.clone(headers=headers)
    return await handler(request)


async def main(port: int) -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")

    @sio.event
    async def connect(sid: str, environ: dict, auth: object) -> None:
        await sio.emit("session", {}, to=sid)  # what bench/idle.cjs waits for

    app = web.Application(middlewares=[no_compression])
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("listening", flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
