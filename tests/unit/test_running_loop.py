"""The running-loop lookup without getpid (chat/adapters/running_loop.py) answers as asyncio's."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from chat.adapters import running_loop

pytestmark = pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="a 3.11 fix only")


def test_outside_a_loop_there_is_none():
    assert running_loop._get_running_loop() is None
    with pytest.raises(RuntimeError, match="no running event loop"):
        running_loop.get_running_loop()


def test_each_running_loop_is_found_and_a_stopped_one_is_not():
    seen = []
    for _ in range(2):  # the second loop must not be answered with the first, stopped one

        async def probe() -> None:
            seen.append((running_loop.get_running_loop(), running_loop._c_get_running_loop()))  # type: ignore[attr-defined]

        asyncio.run(probe())
    assert all(ours is theirs for ours, theirs in seen)
    assert seen[0][0] is not seen[1][0]
    assert running_loop._get_running_loop() is None


def test_another_thread_gets_its_own_loop():
    found: dict[str, object] = {}

    async def in_thread() -> None:
        found["thread"] = (running_loop.get_running_loop(), running_loop._c_get_running_loop())  # type: ignore[attr-defined]

    async def main() -> None:
        here = running_loop.get_running_loop()
        worker = threading.Thread(target=asyncio.run, args=(in_thread(),))
        worker.start()
        await asyncio.get_running_loop().run_in_executor(None, worker.join)
        found["main"] = (here, running_loop.get_running_loop())

    asyncio.run(main())
    theirs, real = found["thread"]  # type: ignore[misc]
    assert theirs is real
    ours, again = found["main"]  # type: ignore[misc]
    assert ours is again and ours is not theirs


def test_installed_everywhere_asyncio_looks(monkeypatch: pytest.MonkeyPatch):
    for module in (asyncio.events, asyncio):
        for name in ("_get_running_loop", "get_running_loop"):
            monkeypatch.setattr(module, name, getattr(module, name))
    monkeypatch.setattr(asyncio.events, "_get_event_loop", asyncio.events._get_event_loop)  # type: ignore[attr-defined]
    assert running_loop.install()

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        assert asyncio.events._get_event_loop() is loop  # type: ignore[attr-defined]

        async def nothing() -> None:
            return None

        async with asyncio.timeout(1):  # timeouts, tasks and gather look the loop up
            await asyncio.gather(asyncio.create_task(nothing()))

    asyncio.run(probe())
    assert asyncio.get_running_loop is running_loop.get_running_loop
    assert not running_loop.install()  # once
