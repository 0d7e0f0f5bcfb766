"""Login throttles that slow password guessing without letting anyone lock the owner out.

A lockout per account alone (N failures from anywhere, then a cool-down for everyone) is a
denial of service: anyone who knows an email can keep its owner out.  Instead failures are
counted where they come from (OWASP, "device cookies"):

- **(account, client address)**: ``CHAT_LOGIN_FAIL_LIMIT`` failures, then attempts on that
  account from that address cool down (``CHAT_LOGIN_COOLDOWN``, doubling up to
  ``CHAT_LOGIN_COOLDOWN_MAX``); a success from that address clears it.  Slows one attacker
  address; the owner elsewhere is untouched.
- **client address, any account**: ``CHAT_LOGIN_IP_FAIL_LIMIT`` failures, then that address's
  attempts cool down.  Slows one address spraying many accounts.
- **account, unknown devices**: ``CHAT_LOGIN_ACCOUNT_FAIL_LIMIT`` failures from devices the
  account does not know, whatever their addresses, then attempts *without a valid device
  cookie* for it cool down.  Slows a distributed attack on one account.
- **known device** (a valid device cookie for the account, ``chat/core/devices.py``): none of
  the above; its own failures count against the device (``CHAT_LOGIN_FAIL_LIMIT``), so a
  stolen or bot-made cookie guesses no faster than one address does.

The trade-off: during a distributed attack on an account, its owner signing in from a *new*
device (no cookie, or cleared cookies) is slowed like the attacker; from a device that signed
in before, never.  ``CHAT_LOGIN_IP_RATE`` (all attempts of an address) applies to everyone.

Counters are keyed by the email as typed (normalised), whether or not an account has it, so a
throttled answer says nothing about which emails exist.  The check and the count are two steps
around the password check: concurrent attempts that passed the check together all count, so a
limit can be overshot by the attempts in flight (bounded by the hashing pool's queue).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from chat import keys
from chat.core.devices import DeviceCookies
from chat.ports import Limits


@dataclass(frozen=True)
class LoginPolicy:
    pair_fails: int = 10  # per (account, address), and per known device
    address_fails: int = 30  # per address, any account
    account_fails: int = 20  # per account, devices it does not know


@dataclass(frozen=True)
class Attempt:
    """Who is trying: the account (normalised email), the client address, and the device id
    of a valid device cookie for that account (None: an unknown device)."""

    email_key: str
    address: str
    device: str | None


class LoginGuard:
    def __init__(self, limits: Limits, devices: DeviceCookies, policy: LoginPolicy) -> None:
        self._limits = limits
        self.devices = devices
        self._policy = policy

    def attempt(self, email_key: str, address: str, cookie: object) -> Attempt:
        return Attempt(email_key, address, self.devices.device(email_key, cookie))

    async def cooling(self, attempt: Attempt) -> float:
        """Seconds until this attempt may be made (0: now)."""
        waits = await self._each("check", self._groups(attempt))
        return max(waits)

    async def failed(self, attempt: Attempt) -> None:
        await self._each("fail", self._groups(attempt))

    async def succeeded(self, attempt: Attempt) -> None:
        """Clear the record of this device, or of this address for this account: the owner's
        success shows those failures were the owner's.  The account's budget for unknown
        devices and the address's record across accounts stay (an attacker can succeed on an
        account of their own)."""
        if attempt.device is not None:
            mine = keys.login_device_key(attempt.email_key, attempt.device)
        else:
            mine = keys.login_pair_key(attempt.email_key, attempt.address)
        await self._limits.cooldown("ok", {mine: 0})

    def _groups(self, attempt: Attempt) -> list[dict[str, int]]:
        """The attempt's counters, grouped by cluster slot (one script call per slot)."""
        email, policy = attempt.email_key, self._policy
        if attempt.device is not None:
            return [{keys.login_device_key(email, attempt.device): policy.pair_fails}]
        account = {
            keys.login_pair_key(email, attempt.address): policy.pair_fails,
            keys.login_throttle_key(email): policy.account_fails,
        }
        return [account, {keys.login_address_key(attempt.address): policy.address_fails}]

    async def _each(self, op: str, groups: list[dict[str, int]]) -> list[float]:
        return list(await asyncio.gather(*(self._limits.cooldown(op, g) for g in groups)))
