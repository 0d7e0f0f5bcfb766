"""A bounded share of a thread pool: at most ``limit`` holders at once, at most ``waiting``
more in line, the rest turned away at once.

Used by ``PasswordHasher`` so that new-password hashes (registrations, rehashes) can never
occupy the whole argon2 pool: logins keep the rest.  Waiting happens here, outside the pool's
FIFO queue; a login submitted to the pool therefore never queues behind more than ``limit``
of them.

Thread-safe and holding no asyncio primitive (slots are given back from worker threads, and an
instance may be built before any event loop runs): waiters hold ``concurrent.futures``
tickets.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from concurrent.futures import Future


class GateClosed(Exception):
    pass


class Gate:
    def __init__(self, limit: int, waiting: int) -> None:
        if limit < 1 or waiting < 0:
            raise ValueError("a gate needs a limit of at least 1 and a non-negative queue")
        self.limit = limit
        self.waiting = waiting
        self._lock = threading.Lock()
        self._holders = 0
        self._line: deque[Future[None]] = deque()
        self._closed = False

    @property
    def load(self) -> int:
        """Holders and waiters."""
        with self._lock:
            return self._holders + len(self._line)

    async def enter(self) -> bool:
        """Take a slot, waiting in line for one if there is room; False when the line is
        full.  Raises ``GateClosed`` once closed.  Every True must be matched by one
        ``leave()``."""
        with self._lock:
            if self._closed:
                raise GateClosed
            if self._holders < self.limit:
                self._holders += 1
                return True
            if len(self._line) >= self.waiting:
                return False
            ticket: Future[None] = Future()
            self._line.append(ticket)
        try:
            await asyncio.wrap_future(ticket)
        except asyncio.CancelledError:
            # wrap_future cancelled the ticket, unless a leaving holder had already handed
            # it the slot: then the slot is ours, and must be passed on.
            if not ticket.cancelled():
                self.leave()
            else:
                with self._lock:  # its place in line is free at once
                    if ticket in self._line:
                        self._line.remove(ticket)
            raise
        return True

    def leave(self, _done: object = None) -> None:
        """Give the slot to the first waiter still waiting, or back (any thread; usable as a
        ``Future`` done callback)."""
        while True:
            with self._lock:
                if not self._line:
                    self._holders -= 1
                    return
                ticket = self._line.popleft()
            # Atomic against the waiter's cancel(): exactly one of the two wins.
            if ticket.set_running_or_notify_cancel():
                ticket.set_result(None)
                return

    def close(self) -> None:
        """Refuse new entries and turn away everyone in line (with ``GateClosed``)."""
        with self._lock:
            self._closed = True
            line, self._line = list(self._line), deque()
        for ticket in line:
            if ticket.set_running_or_notify_cancel():
                ticket.set_exception(GateClosed())
