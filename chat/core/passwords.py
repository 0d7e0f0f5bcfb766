"""Password policy and argon2id hashing that never blocks the event loop.

Policy: a password is a ``str`` of 8 to 1024 characters, used exactly as given (no trimming,
no normalisation), that is not one of the 10,000 most common passwords shipped in
``chat/data/common_passwords.txt`` (compared case-insensitively), not only whitespace, not one
character repeated, and that does not contain the account's own email local part or display
name (ignoring case, when those have at least ``PERSONAL_MIN`` characters). Violations raise
``invalid_password`` (400); the message names the rule and never contains the password.

Hashing: argon2id (argon2-cffi) with parameters at or above the OWASP recommendation
(19 MiB memory, 2 iterations, 1 lane), run in a bounded thread pool with a bounded queue in
front of it; see :class:`PasswordHasher`.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import TypeVar

import argon2
from argon2.exceptions import VerificationError

from chat.core.gate import Gate, GateClosed
from chat.errors import ChatError, unavailable

MIN_LENGTH = 8
MAX_LENGTH = 1024
#: Shorter email local parts and names are too likely to occur by chance ("ann", "bo").
PERSONAL_MIN = 4
COMMON_PASSWORDS_FILE = "common_passwords.txt"

#: OWASP Password Storage Cheat Sheet, argon2id row: m=19 MiB, t=2, p=1.
DEFAULT_MEMORY_COST = 19_456  # KiB
DEFAULT_TIME_COST = 2
DEFAULT_PARALLELISM = 1
DEFAULT_MAX_WAITING = 64
DEFAULT_HASH_WAITING = 8

T = TypeVar("T")


def _invalid(message: str) -> ChatError:
    return ChatError("invalid_password", message, 400)


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lowercase; read once, on first use."""
    path = resources.files("chat") / "data" / COMMON_PASSWORDS_FILE
    text = path.read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def _check_shape(password: object) -> str:
    """The checks that bound the cost of hashing; they apply to every password we hash."""
    if not isinstance(password, str):
        raise _invalid("password must be a string")
    if len(password) > MAX_LENGTH:
        raise _invalid(f"password must be at most {MAX_LENGTH} characters")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid("password must be valid Unicode text") from None
    return password


def check_password(password: object, *, email: str = "", name: str = "") -> str:
    """Return *password* unchanged if it meets the policy, else raise ``invalid_password``.

    ``email`` and ``name`` are the account's: a password made of them is guessed first.
    """
    checked = _check_shape(password)
    if len(checked) < MIN_LENGTH:
        raise _invalid(f"password must be at least {MIN_LENGTH} characters")
    if not checked.strip():
        raise _invalid("password must not be only spaces")
    if len(set(checked)) == 1:
        raise _invalid("password must not be one character repeated")
    if checked.lower() in common_passwords():
        raise _invalid("password is too common: it is on a list of frequently used passwords")
    _check_personal(checked, email, name)
    return checked


def _check_personal(password: str, email: str, name: str) -> None:
    folded = password.casefold()
    local = email.rpartition("@")[0] or email
    for part, what in ((local, "your email address"), (name.strip(), "your name")):
        if len(part) >= PERSONAL_MIN and part.casefold() in folded:
            raise _invalid(f"password must not contain {what}")


def _usable(password: object) -> bool:
    try:
        _check_shape(password)
    except ChatError:
        return False
    return True


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class PasswordHasher:
    """argon2id hashing and verification in a bounded thread pool.

    Every argon2 call runs in a ``ThreadPoolExecutor(max_workers=workers)`` (argon2-cffi
    releases the GIL), so the event loop keeps serving while a hash is computed.

    Memory bound: a running argon2 call holds ``memory_cost`` KiB and at most ``workers`` run
    at once, so peak argon2 memory is ``workers × memory_cost`` (defaults: 4 × 19 MiB =
    76 MiB). Calls beyond those wait in the pool's queue; each holds little (the password
    and a future), but an unbounded queue lets a flood of logins grow memory and latency
    without limit. So at most ``max_waiting`` calls may wait: past that a call fails at once
    with ``unavailable`` (503, retriable) instead of queueing. A slot is freed when the work
    really ends, not when its caller stops waiting: a cancelled caller whose hash is already
    running keeps its slot until the thread is done, so the bound holds under cancellation.

    Lanes: new-password hashes (``hash``: registrations, rehashes at login) may occupy at
    most ``hash_workers`` threads (default: half, at least one), with ``hash_waiting`` more
    waiting *outside* the pool (``chat/core/gate.py``); past that ``hash`` fails at once with
    ``unavailable`` and a ``retry_after``. So a registration flood never holds more than
    ``hash_workers`` threads or queues ahead of a login in the pool: logins (``verify``) keep
    the other ``workers - hash_workers`` threads (none when ``workers`` is 1: then a login
    waits for at most one hash).

    No asyncio primitive is held, so an instance may be built before any event loop runs
    and used from any loop.
    """

    def __init__(
        self,
        *,
        memory_cost: int = DEFAULT_MEMORY_COST,
        time_cost: int = DEFAULT_TIME_COST,
        parallelism: int = DEFAULT_PARALLELISM,
        workers: int | None = None,
        max_waiting: int = DEFAULT_MAX_WAITING,
        hash_workers: int | None = None,
        hash_waiting: int | None = None,
    ) -> None:
        self.workers = min(4, os.cpu_count() or 1) if workers is None else workers
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if max_waiting < 0:
            raise ValueError("max_waiting must not be negative")
        self.max_waiting = max_waiting
        hash_workers = max(1, self.workers // 2) if hash_workers is None else hash_workers
        if hash_waiting is None:
            hash_waiting = min(max_waiting, DEFAULT_HASH_WAITING)
        self._new = Gate(min(hash_workers, self.workers), hash_waiting)
        self._new_seconds = 0.0  # moving average of a new-password hash, for retry_after
        self._argon2 = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="argon2")
        self._lock = threading.Lock()  # done callbacks run in worker threads
        self._admitted = 0  # submitted to the pool and not finished
        self._closed = False
        self._dummy_hash: str | None = None

    async def hash(self, password: str, *, check_policy: bool = True) -> str:
        """Hash a new password after checking the policy (``invalid_password`` if it fails).

        ``check_policy=False`` is for rehashing a password that just verified: it skips the
        minimum length and the common list (the password is already in use), but still
        refuses anything over ``MAX_LENGTH`` characters before hashing.
        """
        checked = check_password(password) if check_policy else _check_shape(password)
        return await self._run(functools.partial(self._argon2.hash, checked), new=True)

    async def verify(self, stored_hash: str, password: str) -> bool:
        """True if *password* matches *stored_hash*; False on a mismatch, an unusable
        password or an invalid hash. Raises only ``unavailable`` (pool saturated or closed).
        """
        if not isinstance(stored_hash, str) or not _usable(password):
            return False
        return await self._run(functools.partial(self._verify_sync, stored_hash, password))

    def needs_rehash(self, stored_hash: str) -> bool:
        """True if *stored_hash* was made with other parameters than this hasher's (argon2
        semantics: raised or lowered) or cannot be parsed. Cheap: no hashing."""
        try:
            return self._argon2.check_needs_rehash(stored_hash)
        except (ValueError, TypeError, AttributeError):
            return True

    async def verify_dummy(self, password: str) -> None:
        """Spend the time of a real verification, for a user that does not exist.

        Verifies *password* against the hash of a random password made once, on first use,
        with this hasher's parameters, so "unknown user" costs what "wrong password" costs.
        """
        if not _usable(password):
            return  # verify() returns at once for such passwords too
        if self._dummy_hash is None:
            decoy = secrets.token_urlsafe(32)
            self._dummy_hash = await self._run(functools.partial(self._argon2.hash, decoy))
        await self.verify(self._dummy_hash, password)

    def close(self) -> None:
        """Stop the pool: queued work is cancelled, running calls finish in the background."""
        with self._lock:
            self._closed = True
        self._new.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _verify_sync(self, stored_hash: str, password: str) -> bool:
        try:
            return self._argon2.verify(stored_hash, password)
        except (VerificationError, ValueError):  # mismatch, invalid or non-ASCII hash
            return False

    async def _run(self, call: Callable[[], T], *, new: bool = False) -> T:
        """Run *call* in the pool, or raise ``unavailable`` at once if too many are waiting.
        ``new``: a new-password hash, in its lane (see the class).

        ``loop.run_in_executor`` is ``wrap_future(executor.submit(...))``; it is spelled out
        here to hold the ``concurrent.futures.Future`` whose completion frees the slot.
        """
        release = await self._enter_new() if new else self._admit()
        try:
            future = self._pool.submit(self._timed(call) if new else call)
        except RuntimeError:  # closed between the check and the submit
            release(None)
            raise unavailable("password hashing is shut down") from None
        future.add_done_callback(release)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if future.cancelled() and self._closed and not _current_task_cancelling():
                raise unavailable("password hashing is shut down") from None
            raise

    def _admit(self) -> Callable[[object], None]:
        with self._lock:
            if self._closed:
                raise unavailable("password hashing is shut down")
            if self._admitted >= self.workers + self.max_waiting:
                raise unavailable("too many password checks in progress, retry shortly")
            self._admitted += 1
        return self._release

    async def _enter_new(self) -> Callable[[object], None]:
        try:
            entered = not self._closed and await self._new.enter()
        except GateClosed:
            entered = False
        if self._closed:
            if entered:
                self._new.leave()
            raise unavailable("password hashing is shut down")
        if not entered:
            # At once, with a hint: a registration flood is answered, not queued.
            per_hash = self._new_seconds or 1.0
            wait = max(1.0, per_hash * self._new.load / self._new.limit)
            message = "too many new passwords are being hashed, retry shortly"
            raise ChatError("unavailable", message, 503, retriable=True, retry_after=wait)
        return self._new.leave

    def _timed(self, call: Callable[[], T]) -> Callable[[], T]:
        def timed() -> T:
            started = time.monotonic()
            try:
                return call()
            finally:
                took, before = time.monotonic() - started, self._new_seconds
                self._new_seconds = 0.8 * before + 0.2 * took if before else took

        return timed

    def _release(self, _future: object) -> None:
        with self._lock:
            self._admitted -= 1
