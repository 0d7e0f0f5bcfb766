"""Password policy, the shipped common-password list and the argon2id hasher."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from chat.core.passwords import (
    MAX_LENGTH,
    MIN_LENGTH,
    PasswordHasher,
    check_password,
    common_passwords,
)
from chat.errors import ChatError

T = TypeVar("T")

GOOD = "violet-otter-marmalade"
#: Cheap parameters for tests that do not check parameters (the defaults are checked below).
FAST: dict[str, Any] = {"memory_cost": 1024, "time_cost": 1}


class Probe(PasswordHasher):
    """Counts the calls that reach the pool; with ``gated``, pool work waits for ``gate``."""

    def __init__(self, *, gated: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls = 0
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)  # released as each call starts in the pool
        self.threads: list[int] = []
        if not gated:
            self.gate.set()

    async def _run(self, call: Callable[[], T], **lane: Any) -> T:
        self.calls += 1

        def gated() -> T:
            self.threads.append(threading.get_ident())
            self.entered.release()
            if not self.gate.wait(10):
                raise TimeoutError("the gate never opened: was the event loop blocked?")
            return call()

        return await super()._run(gated, **lane)


@pytest.fixture
def fast() -> Any:
    hasher = Probe(**FAST)
    yield hasher
    hasher.close()


def assert_invalid(excinfo: pytest.ExceptionInfo[ChatError], password: str, rule: str) -> None:
    err = excinfo.value
    assert (err.code, err.status, err.retriable) == ("invalid_password", 400, False)
    assert rule in err.message
    assert password not in err.message
    assert password not in str(err) and password not in repr(err)


# -- policy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    [GOOD, "  spaced  out  ", "xy" * 512, "Zq7!pW3e", "pässwörd-ünïcode", "\tab\0cdef"],
)
def test_policy_accepts_good_passwords_unchanged(password: str):
    assert check_password(password) is password


def test_policy_counts_characters_and_does_not_trim():
    assert check_password("üö" * (MIN_LENGTH // 2))  # 8 characters, 16 bytes
    with pytest.raises(ChatError) as excinfo:
        check_password(" abcde ")  # 7 characters including the spaces
    assert_invalid(excinfo, " abcde ", "at least 8 characters")


def test_policy_rejects_seven_characters():
    with pytest.raises(ChatError) as excinfo:
        check_password("Zq7!pW3")
    assert_invalid(excinfo, "Zq7!pW3", "at least 8 characters")


@pytest.mark.parametrize("password", ["Password1", "PASSWORD123", "iLoveYou", "QwErTy123"])
def test_policy_rejects_common_passwords_in_any_case(password: str):
    assert password.lower() in common_passwords()
    with pytest.raises(ChatError) as excinfo:
        check_password(password)
    assert_invalid(excinfo, password, "too common")


@pytest.mark.parametrize("password", [None, 12345678, b"bytes-password"])
def test_policy_rejects_non_strings(password: object):
    with pytest.raises(ChatError) as excinfo:
        check_password(password)
    assert excinfo.value.code == "invalid_password"
    assert "must be a string" in excinfo.value.message


def test_policy_rejects_text_that_is_not_unicode():
    with pytest.raises(ChatError) as excinfo:
        check_password("abc\ud800defgh")  # a lone surrogate cannot be encoded
    assert_invalid(excinfo, "abc\ud800defgh", "Unicode")


async def test_too_long_is_rejected_before_any_hashing(fast: Probe):
    password = "Zq7!pW3e" * 128 + "x"
    assert len(password) == MAX_LENGTH + 1
    with pytest.raises(ChatError) as excinfo:
        await fast.hash(password)
    assert_invalid(excinfo, password, "at most 1024 characters")
    with pytest.raises(ChatError):
        await fast.hash(password, check_policy=False)
    assert await fast.verify("$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA", password) is False
    await fast.verify_dummy(password)
    assert fast.calls == 0 and fast.threads == []


async def test_hash_checks_the_policy_first_and_rehash_may_skip_it(fast: Probe):
    with pytest.raises(ChatError):
        await fast.hash("Password1")
    assert fast.calls == 0
    legacy = await fast.hash("short", check_policy=False)
    assert await fast.verify(legacy, "short")


def test_common_list_loads_once_lowercase_and_useful():
    words = common_passwords()
    assert isinstance(words, frozenset)
    assert common_passwords() is words
    assert len(words) > 1000
    assert all(w == w.lower() and MIN_LENGTH <= len(w) <= MAX_LENGTH for w in words)
    assert {"password", "password1", "password123", "iloveyou", "12345678"} <= words


# -- hashing ----------------------------------------------------------------------------------


async def test_hash_then_verify(fast: Probe):
    stored = await fast.hash(GOOD)
    assert stored.startswith("$argon2id$")
    assert GOOD not in stored
    assert await fast.verify(stored, GOOD) is True
    assert await fast.verify(stored, GOOD.upper()) is False
    assert await fast.verify(stored, GOOD + " ") is False  # used as given: no trimming
    assert await fast.hash(GOOD) != stored  # salted


@pytest.mark.parametrize("garbage", ["", "not a hash", "$argon2id$v=19$m=1,t=1,p=1$$", "$é$"])
async def test_verify_is_false_for_garbage_hashes(fast: Probe, garbage: str):
    assert await fast.verify(garbage, GOOD) is False


async def test_default_parameters_meet_owasp_and_rehash_detects_weaker_hashes():
    hasher = PasswordHasher()
    weaker = PasswordHasher(memory_cost=8192, time_cost=1)
    try:
        stored = await hasher.hash(GOOD)
        assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert await hasher.verify(stored, GOOD)
        assert hasher.needs_rehash(stored) is False
        assert hasher.needs_rehash(await weaker.hash(GOOD)) is True
        assert hasher.needs_rehash("garbage") is True
    finally:
        hasher.close()
        weaker.close()


def test_default_worker_count():
    hasher = PasswordHasher()
    try:
        assert hasher.workers == min(4, os.cpu_count() or 1)
    finally:
        hasher.close()


async def test_verify_dummy_verifies_against_a_hash_made_once(fast: Probe):
    await fast.verify_dummy(GOOD)  # returns None (typed so), never raises for a wrong password
    assert fast.calls == 2  # made the dummy hash, then verified against it
    await fast.verify_dummy("another-password")
    assert fast.calls == 3  # one verification, as for a real user


async def test_event_loop_runs_while_hashing():
    # The hash cannot finish until the gate opens, and only a task on the loop opens it:
    # if hashing blocked the loop, the worker would time out and the hash would fail.
    hasher = Probe(gated=True, **FAST)
    ticked = asyncio.Event()
    hashing = asyncio.create_task(hasher.hash(GOOD))

    async def ticker() -> None:
        assert not hashing.done()
        ticked.set()
        hasher.gate.set()

    await asyncio.create_task(ticker())
    stored = await hashing
    assert ticked.is_set()
    assert await hasher.verify(stored, GOOD)
    assert threading.get_ident() not in hasher.threads
    hasher.close()


async def test_waiting_is_bounded():
    hasher = Probe(gated=True, workers=1, max_waiting=1, **FAST)
    tasks = [asyncio.create_task(hasher.hash(GOOD)) for _ in range(3)]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    hasher.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, ChatError)]
    assert errors, results
    for err in errors:
        assert (err.code, err.status, err.retriable) == ("unavailable", 503, True)
    assert sum(isinstance(r, str) for r in results) == 3 - len(errors)
    assert isinstance(await hasher.hash(GOOD), str)  # the slots were given back
    hasher.close()


async def test_cancelled_caller_keeps_its_slot_until_the_work_ends():
    hasher = Probe(gated=True, workers=1, max_waiting=0, **FAST)
    running = asyncio.create_task(hasher.hash(GOOD))
    assert await asyncio.to_thread(hasher.entered.acquire, True, 10)  # running in the pool
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    with pytest.raises(ChatError) as excinfo:  # the argon2 call is still running
        await hasher.hash(GOOD)
    assert excinfo.value.code == "unavailable"
    hasher.gate.set()
    hasher._pool.shutdown(wait=True)  # the worker ended and ran its done callback
    assert hasher._admitted == 0


async def test_closed_hasher_is_unavailable(fast: Probe):
    fast.close()
    with pytest.raises(ChatError) as excinfo:
        await fast.hash(GOOD)
    assert (excinfo.value.code, excinfo.value.status) == ("unavailable", 503)
