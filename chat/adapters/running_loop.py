"""The running event loop, found without a system call (Python 3.11).

CPython 3.11's ``asyncio.get_running_loop()`` and its relatives call ``getpid()`` on every
lookup, to notice a loop inherited through ``fork()``.  asyncio looks the loop up for every
task, timeout, gather, queue and lock operation, so a node made about 40 ``getpid`` system
calls per message, 8 % of its CPU (py-spy ``--native``, docs/performance.md).  Python 3.12
dropped the check (it forgets the loop in a forked child instead); this module does the same
for 3.11: the loop that is running in this thread is remembered, forgotten after a fork, and
asked of asyncio's own lookup whenever it is not running any more or another thread asks.

Hazard: it replaces functions of the asyncio package (``install``).  Only on 3.11, where the
check exists; ``tests/unit/test_running_loop.py`` holds the replacement to the original's answers.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from asyncio import events
from typing import Any

_c_get_running_loop = events._get_running_loop
_c_get_event_loop = events._get_event_loop  # type: ignore[attr-defined]
_get_ident = threading.get_ident


class _Remembered:
    loop: Any = None
    thread = 0


_remembered = _Remembered()


def _forget() -> None:
    _remembered.loop = None


def _get_running_loop() -> asyncio.AbstractEventLoop | None:
    loop = _remembered.loop
    if loop is not None and _remembered.thread == _get_ident() and loop.is_running():
        return loop  # type: ignore[no-any-return]
    loop = _c_get_running_loop()
    if loop is not None:
        _remembered.loop, _remembered.thread = loop, _get_ident()
    return loop


def get_running_loop() -> asyncio.AbstractEventLoop:
    loop = _get_running_loop()
    if loop is None:
        raise RuntimeError("no running event loop")
    return loop


def _get_event_loop(stacklevel: int = 3) -> asyncio.AbstractEventLoop:
    loop = _get_running_loop()
    if loop is not None:
        return loop
    return _c_get_event_loop(stacklevel + 1)  # type: ignore[no-any-return]


def install() -> bool:
    """Replace the lookups where asyncio and the libraries call them (3.11 only; once)."""
    if sys.version_info[:2] != (3, 11) or events.get_running_loop is get_running_loop:
        return False
    for module in (events, asyncio):
        module._get_running_loop = _get_running_loop  # type: ignore[attr-defined]
        module.get_running_loop = get_running_loop  # type: ignore[attr-defined]
    events._get_event_loop = _get_event_loop  # type: ignore[attr-defined]
    os.register_at_fork(after_in_child=_forget)
    return True
