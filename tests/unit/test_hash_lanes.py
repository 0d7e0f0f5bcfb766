"""The argon2 pool's lanes: new-password hashes (registrations, rehashes) hold at most their
share of the threads and wait outside the pool, boundedly; logins keep the rest."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from test_accounts_core import DictStore, OpenLimits, accounts

from chat.core.gate import Gate, GateClosed
from chat.core.passwords import PasswordHasher
from chat.errors import ChatError

T = TypeVar("T")
FAST: dict[str, Any] = {"memory_cost": 1024, "time_cost": 1}
GOOD = "violet-otter-marmalade"


class Held(PasswordHasher):
    """New-password hashes wait for ``release`` in their thread; counts how many run at once."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.running = self.most = 0
        self._count = threading.Lock()

    async def _run(self, call: Callable[[], T], **lane: Any) -> T:
        if not lane.get("new"):
            return await super()._run(call, **lane)

        def held() -> T:
            with self._count:
                self.running += 1
                self.most = max(self.most, self.running)
            self.started.release()
            try:
                if not self.release.wait(10):
                    raise TimeoutError("never released")
                return call()
            finally:
                with self._count:
                    self.running -= 1

        return await super()._run(held, **lane)

    async def wait_started(self, count: int = 1) -> None:
        for _ in range(count):
            assert await asyncio.to_thread(self.started.acquire, True, 10)


async def in_line(gate: Gate, load: int) -> None:
    """Until the tasks just started hold or wait for their places (``load`` of them): each
    gets there in the loop iterations it needs, with no clock involved."""
    for _ in range(100):
        if gate.load == load:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"the gate's load stayed {gate.load}, not {load}")


@pytest.fixture
def held():
    hasher = Held(workers=2, hash_workers=1, hash_waiting=2, **FAST)
    yield hasher
    hasher.release.set()
    hasher.close()


async def test_logins_verify_while_new_passwords_hold_their_share(held: Held):
    other = PasswordHasher(**FAST)
    stored = await other.hash(GOOD)
    other.close()
    hashing = [asyncio.create_task(held.hash(GOOD)) for _ in range(3)]
    await held.wait_started()
    # One running, two waiting outside the pool: the other thread is free for logins.
    assert await asyncio.wait_for(held.verify(stored, GOOD), 5) is True
    with pytest.raises(ChatError) as refused:  # the line is full: answered at once
        await held.hash(GOOD)
    assert (refused.value.code, refused.value.status) == ("unavailable", 503)
    assert refused.value.retriable and refused.value.retry_after >= 1
    held.release.set()
    assert all(h.startswith("$argon2id$") for h in await asyncio.gather(*hashing))
    assert held.most == 1


async def test_a_cancelled_waiter_gives_up_its_place(held: Held):
    running = asyncio.create_task(held.hash(GOOD))
    await held.wait_started()
    waiting = [asyncio.create_task(held.hash(GOOD)) for _ in range(2)]
    await in_line(held._new, 3)
    waiting[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting[0]
    again = asyncio.create_task(held.hash(GOOD))  # takes the freed place instead of a 503
    held.release.set()
    assert all(isinstance(h, str) for h in await asyncio.gather(running, waiting[1], again))
    assert held._new.load == 0


async def test_closing_turns_the_line_away(held: Held):
    running = asyncio.create_task(held.hash(GOOD))
    await held.wait_started()
    waiting = asyncio.create_task(held.hash(GOOD))
    await in_line(held._new, 2)
    held.close()
    with pytest.raises(ChatError) as closed:
        await waiting
    assert closed.value.code == "unavailable"
    held.release.set()
    await asyncio.gather(running, return_exceptions=True)


async def test_a_login_whose_rehash_finds_no_room_still_succeeds(held: Held):
    store, limits = DictStore(), OpenLimits()
    weak = PasswordHasher(memory_cost=512, time_cost=1, workers=1)
    await accounts(store, limits, weak).register("ann@example.com", GOOD, None, client="ip")
    before = store.accounts["ann@example.com"][1]
    blocking = [asyncio.create_task(held.hash(GOOD)) for _ in range(3)]  # share and line full
    await held.wait_started()
    user = await accounts(store, limits, held).login("ann@example.com", GOOD, "ip")
    assert user.email == "ann@example.com"
    assert store.accounts["ann@example.com"][1] == before  # left for a later login
    held.release.set()
    await asyncio.gather(*blocking)
    await accounts(store, limits, held).login("ann@example.com", GOOD, "ip")
    assert store.accounts["ann@example.com"][1] != before
    weak.close()


async def test_gate_hands_slots_on_in_order_and_bounds_its_line():
    gate = Gate(1, 2)
    assert await gate.enter()
    second, third = (asyncio.create_task(gate.enter()) for _ in "ab")
    await in_line(gate, 3)
    assert await gate.enter() is False and gate.load == 3
    gate.leave()
    assert await second is True and not third.done()
    gate.leave()
    assert await third is True
    gate.leave()
    assert gate.load == 0
    assert await gate.enter()
    waiter = asyncio.create_task(gate.enter())
    await in_line(gate, 2)
    gate.close()
    with pytest.raises(GateClosed):
        await waiter
    with pytest.raises(GateClosed):
        await gate.enter()
