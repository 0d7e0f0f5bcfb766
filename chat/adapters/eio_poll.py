"""A cheaper ``AsyncSocket.poll`` for python-engineio 4.x on Python 3.11.

Every packet a socket sends (an ack, a delivered message, a ping) wakes the socket's writer,
which waits in ``poll()`` with ``asyncio.wait_for(queue.get(), timeout)``.  On Python 3.11
``wait_for`` wraps the ``get()`` in a task of its own, so each packet sent cost one more task
and its scheduling: about 5 % of a node's CPU under the dm benchmark
(docs/performance.md).  This ``poll`` does what the library's does (the same return values,
the same ``QueueEmpty`` on timeout or cancellation, ``None`` still ends the writer) with
``asyncio.timeout`` around the wait, and no wait at all when packets are queued already.

Hazard: it replaces a method of the library.  It is applied only to the python-engineio
series it was written against (``SERIES``); on another one the library's own ``poll`` stays
and a log line says so.  ``tests/test_eio_poll.py`` holds both versions to the same
behaviour, and every Socket.IO test runs over it.
"""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import version
from typing import Any

from engineio import async_socket, exceptions

log = logging.getLogger(__name__)

SERIES = "4.15."


async def poll(self: Any) -> list[Any]:
    """Wait for packets to send to the client (python-engineio's contract)."""
    queue: asyncio.Queue[Any] = self.queue
    if queue.empty():
        try:
            async with asyncio.timeout(self.server.ping_interval + self.server.ping_timeout):
                first = await queue.get()
        except (TimeoutError, asyncio.CancelledError):
            raise exceptions.QueueEmpty() from None
    else:
        first = queue.get_nowait()
    queue.task_done()
    if first is None:
        return []
    packets = [first]
    while not queue.empty():
        packet = queue.get_nowait()
        queue.task_done()
        if packet is None:  # leave the end marker for the next poll, as the library does
            queue.put_nowait(None)
            break
        packets.append(packet)
    return packets


ORIGINAL = async_socket.AsyncSocket.poll


def apply() -> bool:
    """Install ``poll`` if the installed python-engineio is the series it was written for."""
    installed = version("python-engineio")
    if not installed.startswith(SERIES):
        log.info("python-engineio %s: its own AsyncSocket.poll is kept", installed)
        return False
    async_socket.AsyncSocket.poll = poll
    return True
