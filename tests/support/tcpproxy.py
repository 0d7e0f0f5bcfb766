"""A TCP proxy between chat nodes and one Redis server that a test can make sick: ``hold()``
stops forwarding in both directions while every connection stays open (a network partition
that TCP has not given up on yet), ``slow(seconds)`` delays every chunk, ``heal()`` forwards
normally again (what was held flows on, as after a partition heals).

It runs its own event loop in a thread: the test's loop may block (starting node processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from devstack.net import pick_free_ports

CHUNK = 65536


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = pick_free_ports(1)[0]
        self._flowing = asyncio.Event()  # bound to the proxy's loop on first use (3.10+)
        self._flowing.set()
        self.delay = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        start = asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _close(self) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def hold(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def slow(self, seconds: float) -> None:
        self.delay = seconds

    def heal(self) -> None:
        self.delay = 0.0
        self._loop.call_soon_threadsafe(self._flowing.set)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(CHUNK):
                await self._flowing.wait()  # held: nothing read is passed on, nothing lost
                if self.delay:
                    await asyncio.sleep(self.delay)  # the simulated latency itself
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                sink.close()
