"""The login throttles and device cookies over in-memory ports (the cluster's script has its own
end-to-end tests in test_login_throttle.py)."""

from __future__ import annotations

import pytest
from test_accounts_core import DictStore

from chat.core.accounts import Accounts
from chat.core.devices import DeviceCookies
from chat.core.login_guard import LoginGuard, LoginPolicy
from chat.core.passwords import PasswordHasher
from chat.core.tokens import TokenService
from chat.errors import ChatError

FIRST, CAP = 30.0, 900.0
PASSWORD = "the owner's passphrase"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class MemoryLimits:
    """``cooldown`` as chat/adapters/cluster/limits.py's ``COOLDOWNS`` script does it; every
    token bucket open (and its calls recorded)."""

    def __init__(self, clock: Clock) -> None:
        self.clock, self.records, self.takes = clock, {}, []

    async def take(self, scope, ident, rate, burst, want=1):
        self.takes.append((scope, ident, rate, burst))
        return want, 0.0

    async def cooldown(self, op, counters):
        now, longest = self.clock(), 0.0
        for key, limit in counters.items():
            if op == "ok":
                self.records.pop(key, None)
                continue
            record = self.records.setdefault(key, {"fails": 0, "lockouts": 0, "until": 0.0})
            if record["until"] > now:
                longest = max(longest, record["until"] - now)
            elif op == "fail":
                record["fails"] += 1
                if record["fails"] >= limit:
                    record["lockouts"] += 1
                    cooldown = min(CAP, FIRST * 2 ** (record["lockouts"] - 1))
                    record.update(fails=0, until=now + cooldown)
                    longest = max(longest, cooldown)
        return longest


@pytest.fixture
def hasher():
    fast = PasswordHasher(memory_cost=1024, time_cost=1, workers=2)
    yield fast
    fast.close()


@pytest.fixture
def clock():
    return Clock()


def service(hasher, clock, policy, **rates):
    limits = MemoryLimits(clock)
    devices = DeviceCookies("k" * 32, clock=clock)
    tokens = TokenService(signing_key="s" * 32, issuer="chat")
    guard = LoginGuard(limits, devices, policy)
    rates = {"login_ip_rate": 100, **rates}
    return Accounts(DictStore(), limits, hasher, tokens, guard=guard, clock=clock, **rates)


async def outcome(accounts, email, password, address, device=None):
    """200, 401, or (429, retry_after)."""
    try:
        await accounts.login(email, password, address, device=device)
    except ChatError as exc:
        return (exc.status, exc.retry_after) if exc.status == 429 else exc.status
    return 200


async def test_one_address_guessing_is_slowed_and_the_owner_elsewhere_is_not(hasher, clock):
    accounts = service(hasher, clock, LoginPolicy(pair_fails=3, address_fails=99, account_fails=99))
    await accounts.register("ann@example.com", PASSWORD, None, client="10.0.0.1")
    attacker = [
        await outcome(accounts, "ann@example.com", "guess-1234", "203.0.113.9") for _ in "abc"
    ]
    assert attacker == [401, 401, 401]
    # Even the right password, from there: the answer must not tell a right guess.
    assert await outcome(accounts, "ann@example.com", PASSWORD, "203.0.113.9") == (429, FIRST)
    assert await outcome(accounts, "ann@example.com", PASSWORD, "198.51.100.2") == 200
    clock.now += FIRST
    for _ in "abc":
        await outcome(accounts, "ann@example.com", "guess-1234", "203.0.113.9")
    assert await outcome(accounts, "ann@example.com", "x", "203.0.113.9") == (429, 2 * FIRST)


async def test_a_distributed_attack_slows_new_devices_only(hasher, clock):
    accounts = service(hasher, clock, LoginPolicy(pair_fails=3, address_fails=99, account_fails=5))
    await accounts.register("ann@example.com", PASSWORD, None, client="10.0.0.1")
    await accounts.login("ann@example.com", PASSWORD, "10.0.0.1")
    known = accounts.device_cookie(" Ann@Example.com ")  # what the owner's browser got
    for bot in range(5):
        assert await outcome(accounts, "ann@example.com", "guess", f"192.0.2.{bot}") == 401
    assert await outcome(accounts, "ann@example.com", "guess", "192.0.2.77") == (429, FIRST)
    # The trade-off: the owner on a new device is slowed too ...
    assert await outcome(accounts, "ann@example.com", PASSWORD, "192.0.2.88") == (429, FIRST)
    # ... on a device that signed in before, never; wherever it is.
    assert await outcome(accounts, "ann@example.com", PASSWORD, "192.0.2.88", known) == 200
    # A bot's own account's cookie does not count for another account.
    await accounts.register("bot@example.com", "bot passphrase", None, client="192.0.2.1")
    bots = accounts.device_cookie("bot@example.com")
    assert await outcome(accounts, "ann@example.com", "guess", "192.0.2.1", bots) == (429, FIRST)


async def test_a_device_cookie_guesses_no_faster_than_an_address(hasher, clock):
    accounts = service(hasher, clock, LoginPolicy(pair_fails=3, address_fails=99, account_fails=3))
    await accounts.register("ann@example.com", PASSWORD, None, client="10.0.0.1")
    stolen, other = (accounts.device_cookie("ann@example.com") for _ in "ab")
    for _ in "abc":
        assert await outcome(accounts, "ann@example.com", "guess", "192.0.2.1", stolen) == 401
    assert await outcome(accounts, "ann@example.com", PASSWORD, "192.0.2.1", stolen) == (429, FIRST)
    # The failures were the device's, not the account's: other devices are untouched.
    assert await outcome(accounts, "ann@example.com", PASSWORD, "10.0.0.1", other) == 200
    assert await outcome(accounts, "ann@example.com", PASSWORD, "10.0.0.2") == 200


async def test_one_address_spraying_many_accounts_is_slowed(hasher, clock):
    accounts = service(hasher, clock, LoginPolicy(pair_fails=9, address_fails=4, account_fails=9))
    await accounts.register("ann@example.com", PASSWORD, None, client="10.0.0.1")
    sprayed = [await outcome(accounts, f"u{i}@example.com", "guess", "192.0.2.1") for i in range(4)]
    assert sprayed == [401] * 4
    assert await outcome(accounts, "ann@example.com", "guess", "192.0.2.1") == (429, FIRST)
    assert await outcome(accounts, "ann@example.com", PASSWORD, "192.0.2.2") == 200


async def test_unknown_emails_are_throttled_like_accounts(hasher, clock):
    accounts = service(hasher, clock, LoginPolicy(pair_fails=2, address_fails=99, account_fails=99))
    await accounts.register("ann@example.com", PASSWORD, None, client="10.0.0.1")
    seen = {}
    for email in ("ann@example.com", "nobody@example.com"):
        seen[email] = [await outcome(accounts, email, "guess", "192.0.2.1") for _ in range(3)]
    assert seen["ann@example.com"] == seen["nobody@example.com"] == [401, 401, (429, FIRST)]


async def test_a_success_clears_the_address_record_but_not_the_account_budget(hasher, clock):
    accounts = service(hasher, clock, LoginPolicy(pair_fails=2, address_fails=99, account_fails=3))
    await accounts.register("ann@example.com", PASSWORD, None, client="10.0.0.1")
    assert await outcome(accounts, "ann@example.com", "typo", "10.0.0.1") == 401
    assert await outcome(accounts, "ann@example.com", PASSWORD, "10.0.0.1") == 200
    assert await outcome(accounts, "ann@example.com", "typo", "10.0.0.1") == 401  # 1 of 2 again
    assert await outcome(accounts, "ann@example.com", "typo", "10.0.0.2") == 401  # budget: 3 of 3
    assert await outcome(accounts, "ann@example.com", PASSWORD, "10.0.0.1") == (429, FIRST)


def test_device_cookies_are_bound_signed_and_expire(clock):
    devices = DeviceCookies("k" * 32, ttl=100, clock=clock)
    cookie = devices.issue("ann@example.com")
    device = devices.device("ann@example.com", cookie)
    assert device and device in cookie and "ann" not in cookie
    assert devices.device("bob@example.com", cookie) is None
    assert DeviceCookies("j" * 32, clock=clock).device("ann@example.com", cookie) is None
    ident, expires, signature = cookie.split(".")
    assert devices.device("ann@example.com", f"{ident}.{int(expires) + 999}.{signature}") is None
    assert devices.device("ann@example.com", f"{ident[::-1]}.{expires}.{signature}") is None
    for junk in (None, 5, "", "a.b.c", cookie + "x", cookie * 3):
        assert devices.device("ann@example.com", junk) is None
    # A login renews the cookie and keeps the device (its failure record is its own).
    clock.now += 60
    renewed = devices.issue("ann@example.com", cookie)
    assert renewed != cookie and devices.device("ann@example.com", renewed) == device
    clock.now += 50
    assert devices.device("ann@example.com", cookie) is None
    assert devices.device("ann@example.com", renewed) == device
    assert devices.device("ann@example.com", devices.issue("ann@example.com", cookie)) != device


async def test_registrations_are_limited_per_address_never_looser_than_logins(hasher, clock):
    accounts = service(hasher, clock, LoginPolicy(), login_ip_rate=3, register_ip_rate=60)
    limits = accounts._limits
    await accounts.register("ann@example.com", PASSWORD, None, client="192.0.2.1")
    await accounts.login("ann@example.com", PASSWORD, "192.0.2.1")
    assert limits.takes == [
        ("register-ip", "192.0.2.1", 3 / 60, 3),  # capped by CHAT_LOGIN_IP_RATE
        ("login-ip", "192.0.2.1", 3 / 60, 3),
    ]
