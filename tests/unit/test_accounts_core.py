"""Account logic over in-memory ports (the Redis side has its own tests on a real cluster)."""

from __future__ import annotations

import pytest

from chat.core.accounts import Accounts
from chat.core.passwords import PasswordHasher
from chat.core.tokens import TokenService
from chat.errors import ChatError


class DictStore:
    def __init__(self):
        self.users, self.accounts = {}, {}

    async def create(self, user, email_key, password_hash):
        if email_key in self.accounts:
            return False
        self.users[user.id] = user
        self.accounts[email_key] = (user.id, password_hash)
        return True

    async def account(self, email_key):
        from chat.models import Account

        found = self.accounts.get(email_key)
        return Account(*found) if found else None

    async def set_password_hash(self, email_key, password_hash):
        self.accounts[email_key] = (self.accounts[email_key][0], password_hash)

    async def user(self, user_id):
        return self.users.get(user_id)


class OpenLimits:
    def __init__(self):
        self.login_ops = []

    async def take(self, scope, ident, rate, burst, want=1):
        return want, 0.0

    async def cooldown(self, op, counters):
        self.login_ops.append(op)
        return 0.0

    async def is_revoked(self, jti):
        return False


def accounts(store, limits, hasher):
    tokens = TokenService(signing_key="s" * 32, issuer="chat")
    return Accounts(store, limits, hasher, tokens, login_ip_rate=100)


async def test_login_rehashes_when_the_parameters_were_raised():
    store, limits = DictStore(), OpenLimits()
    weak = PasswordHasher(memory_cost=8192, time_cost=1, workers=1)
    strong = PasswordHasher(workers=1)
    user = await accounts(store, limits, weak).register(
        "Ann@Example.com", "a long secret", None, client="ip"
    )
    assert "$m=8192,t=1," in store.accounts["ann@example.com"][1]

    logged_in = await accounts(store, limits, strong).login(
        " ann@example.COM ", "a long secret", "127.0.0.1"
    )

    assert logged_in == user
    assert "$m=19456,t=2,p=1$" in store.accounts["ann@example.com"][1]
    # The account's slot and the address's are checked; only the (account, address) record
    # is cleared by the success.
    assert limits.login_ops == ["check", "check", "ok"]


async def test_failed_logins_are_counted_for_unknown_emails_too():
    store, limits = DictStore(), OpenLimits()
    hasher = PasswordHasher(memory_cost=8192, time_cost=1, workers=1)
    with pytest.raises(ChatError) as err:
        await accounts(store, limits, hasher).login("ghost@example.com", "whatever1", "ip")
    assert err.value.code == "invalid_credentials"
    assert limits.login_ops == ["check", "check", "fail", "fail"]


@pytest.mark.parametrize(
    ("email", "password"), [(None, "whatever1"), ("ann@example.com", None), (5, []), ("", "")]
)
async def test_a_login_without_an_email_or_a_password_is_answered_as_a_wrong_one(email, password):
    store, limits = DictStore(), OpenLimits()
    hasher = PasswordHasher(memory_cost=8192, time_cost=1, workers=1)
    with pytest.raises(ChatError) as err:
        await accounts(store, limits, hasher).login(email, password, "ip")
    assert (err.value.code, err.value.status) == ("invalid_credentials", 401)
