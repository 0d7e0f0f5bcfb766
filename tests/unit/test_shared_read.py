"""``SharedRead`` (chat/adapters/shared_read.py): callers share reads, and each gets a read
that began after its call."""

from __future__ import annotations

import asyncio

import pytest

from chat.adapters.shared_read import SharedRead


class Store:
    """A value behind reads the test lets finish one by one."""

    def __init__(self) -> None:
        self.value, self.reads = 0, 0
        self.started = asyncio.Event()
        self.gate = asyncio.Event()

    async def read(self) -> int:
        self.reads += 1
        seen = self.value  # what the read sees is what was there when it began
        self.started.set()
        await self.gate.wait()
        self.gate.clear()
        if seen < 0:
            raise RuntimeError("failed")
        return seen


async def test_callers_during_a_read_share_the_next_one_which_sees_what_came_before_them():
    store = Store()
    shared = SharedRead(store.read)
    first = asyncio.ensure_future(shared())
    await store.started.wait()
    store.value = 1  # written (and acknowledged) while the first read is out ...
    later = [asyncio.ensure_future(shared()) for _ in range(5)]  # ... then these ask
    store.started.clear()
    store.gate.set()
    assert await first == 0
    await store.started.wait()  # the next read began once the first ended
    store.gate.set()
    assert await asyncio.gather(*later) == [1] * 5  # never the older read's 0
    assert store.reads == 2
    store.value = 2
    store.gate.set()  # a caller after everything ended: a read of its own
    assert await shared() == 2 and store.reads == 3


async def test_a_failed_read_fails_those_who_shared_it_and_the_next_one_reads_again():
    store = Store()
    shared = SharedRead(store.read)
    first = asyncio.ensure_future(shared())
    await store.started.wait()
    store.value = -1
    later = [asyncio.ensure_future(shared()) for _ in range(2)]
    store.started.clear()
    store.gate.set()
    assert await first == 0
    await store.started.wait()
    store.gate.set()
    for outcome in await asyncio.gather(*later, return_exceptions=True):
        assert isinstance(outcome, RuntimeError)
    store.value = 3
    store.gate.set()
    assert await shared() == 3


async def test_a_caller_that_goes_away_does_not_cancel_the_read_of_the_others():
    store = Store()
    shared = SharedRead(store.read)
    first = asyncio.ensure_future(shared())
    await store.started.wait()
    # Both ask while the first read is out (they run before it can end: the loop's queue).
    gone, stays = asyncio.ensure_future(shared()), asyncio.ensure_future(shared())
    first.cancel()  # the read in flight goes on all the same
    store.started.clear()
    store.value = 4
    store.gate.set()
    await store.started.wait()  # the next read, which both wait for
    gone.cancel()  # ... and goes on for the one that stays
    store.gate.set()
    assert await stays == 4 and store.reads == 2
    for cancelled in (gone, first):
        with pytest.raises(asyncio.CancelledError):
            await cancelled
