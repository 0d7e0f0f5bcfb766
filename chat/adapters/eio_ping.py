"""python-engineio's server pings from a timer per socket, not from a task per socket.

``AsyncSocket.schedule_ping`` starts a background task that sleeps ``ping_interval`` (25 s)
and then queues a PING.  So every idle connection holds a task, its coroutine and the
sleep's future for most of its life: about 1.2 KiB more than the timer that replaces it
here (tracemalloc, 10,000 of each).  The packet and its timing are the library's.

``_ping_due`` queues the PING without awaiting anything. The library's ``send`` first checks
the ping timeout, but the ping clock was just set to now, so that check cannot fail. It then
does ``queue.put``, which is ``put_nowait`` on ``PacketQueue``: it never blocks and wakes the
writer. So the timer is installed only with ``PacketQueue`` (``eio_tuning.apply``).

Hazard: this replaces a method of the library, for the series ``eio_tuning.SERIES`` only;
``tests/unit/test_eio_tuning.py`` holds it to the library's behaviour.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from engineio import async_socket, packet

#: The library's own, for tests that hold both to the same cases (read before any ``apply``).
LIBRARY = async_socket.AsyncSocket.schedule_ping


def schedule_ping(self: Any) -> None:
    """The next PING ``ping_interval`` after the last PONG (or the connection's start)."""
    # Only once the previous cycle ended (its PONG came back), as the library does.
    if self.last_ping:
        self.last_ping = None
        asyncio.get_running_loop().call_later(self.server.ping_interval, _ping_due, self)


def _ping_due(socket: Any) -> None:
    if socket.closing or socket.closed:
        return
    socket.last_ping = time.time()
    socket.queue.put_nowait(packet.Packet(packet.PING))
