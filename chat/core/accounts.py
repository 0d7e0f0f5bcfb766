"""Accounts: register, log in, log out, authenticate, look up and rename users.

Any node can do all of it: users live in the Redis Cluster, tokens are stateless JWTs, and the
only shared state a request needs besides the user record is the denylist of revoked tokens.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from chat import keys
from chat.core.identity import clean_email, clean_name, default_name, is_user_id
from chat.core.passwords import MAX_LENGTH, PasswordHasher, check_password
from chat.core.tokens import Claims, TokenService
from chat.errors import ChatError, not_found, rate_limited, unauthorized
from chat.models import Envelope, UserRecord, encode_envelope
from chat.ports import AccountStore, Broker, Limits

INVALID_CREDENTIALS = "email or password is wrong"


def new_user_id() -> str:
    """Opaque and URL-safe: 12 characters of [A-Za-z0-9_-]."""
    return secrets.token_urlsafe(9)


class Accounts:
    def __init__(
        self,
        store: AccountStore,
        limits: Limits,
        hasher: PasswordHasher,
        tokens: TokenService,
        broker: Broker,
        *,
        login_ip_rate: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._limits = limits
        self._hasher = hasher
        self._tokens = tokens
        self._broker = broker
        self._ip_rate = login_ip_rate
        self._clock = clock

    async def register(
        self, email: object, password: object, name: object
    ) -> tuple[UserRecord, str]:
        shown_email, email_key = clean_email(email)
        display = default_name(shown_email) if name is None else clean_name(name)
        password_hash = await self._hasher.hash(check_password(password))
        user = UserRecord(new_user_id(), shown_email, display, int(self._clock()))
        if not await self._store.create(user, email_key, password_hash):
            raise ChatError("email_taken", "an account with this email exists", 409)
        return user, self._tokens.issue(user.id, user.name)[0]

    async def login(self, email: object, password: object, client: str) -> tuple[UserRecord, str]:
        """Unknown email and wrong password answer alike, in status, body and time."""
        _, wait = await self._limits.take("login-ip", client, self._ip_rate / 60, self._ip_rate)
        if wait:
            raise rate_limited(wait)
        if not isinstance(email, str) or not isinstance(password, str):
            raise unauthorized(INVALID_CREDENTIALS)
        email_key = email.strip().lower()
        cooling = await self._limits.login(email_key, "check")
        if cooling:
            raise rate_limited(cooling)
        account = await self._store.account(email_key) if len(password) <= MAX_LENGTH else None
        if account is None:
            await self._hasher.verify_dummy(password[:MAX_LENGTH])
        if account is None or not await self._hasher.verify(account.password_hash, password):
            await self._limits.login(email_key, "fail")
            raise ChatError("invalid_credentials", INVALID_CREDENTIALS, 401)
        await self._limits.login(email_key, "ok")
        if self._hasher.needs_rehash(account.password_hash):
            rehashed = await self._hasher.hash(password, check_policy=False)
            await self._store.set_password_hash(email_key, rehashed)
        user = await self._store.user(account.user_id)
        if user is None:
            raise ChatError("invalid_credentials", INVALID_CREDENTIALS, 401)
        return user, self._tokens.issue(user.id, user.name)[0]

    async def authenticate(self, token: object) -> Claims:
        """A valid token that was not revoked (checked on every handshake and request)."""
        claims = self._tokens.verify(token)
        if await self._limits.is_revoked(claims.jti):
            raise unauthorized("token revoked")
        return claims

    async def logout(self, claims: Claims) -> None:
        """Revoke the token everywhere and drop the sockets opened with it, on every node."""
        await self._limits.revoke(claims.jti, claims.exp - self._clock() + 60)
        notice = Envelope("ctl", "revoke", {"jti": claims.jti})
        await self._broker.publish(keys.user_channel(claims.sub), encode_envelope(notice))

    async def me(self, user_id: str) -> UserRecord:
        user = await self._store.user(user_id)
        if user is None:
            raise unauthorized("the account no longer exists")
        return user

    async def find(self, user_id: str) -> UserRecord:
        user = await self._store.user(user_id) if is_user_id(user_id) else None
        if user is None:
            raise not_found("no_user", "no such user")
        return user

    async def rename(self, user_id: str, name: object) -> UserRecord:
        user = await self.me(user_id)
        renamed = UserRecord(user.id, user.email, clean_name(name), user.created)
        await self._store.set_name(user.id, renamed.name)
        return renamed
