"""Accounts: register, log in, authenticate, look up and rename users.

Any node can do all of it: users live in the Redis Cluster, tokens are stateless JWTs, and the
only shared state a request needs besides the user record is the denylist of revoked tokens
and the user's sign-ins (``chat/core/sessions.py``: refresh, logout).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from chat.core.devices import DeviceCookies
from chat.core.identity import clean_email, clean_name, default_name
from chat.core.login_guard import LoginGuard, LoginPolicy
from chat.core.passwords import MAX_LENGTH, PasswordHasher, check_password
from chat.core.tokens import SERVICE_PREFIX, Claims, TokenService
from chat.errors import TOKEN_REVOKED, ChatError, not_found, rate_limited, unauthorized
from chat.models import Account, UserRecord, is_user_id
from chat.ports import AccountStore, Limits, SessionStore

if TYPE_CHECKING:  # service.py imports this module (new_user_id)
    from chat.core.service import ServiceTokens

INVALID_CREDENTIALS = "email or password is wrong"


def wrong_credentials() -> ChatError:
    """A login refused: one answer for a missing field, an unknown email, a wrong password."""
    return ChatError("invalid_credentials", INVALID_CREDENTIALS, 401)


def new_user_id() -> str:
    """Opaque and URL-safe: 12 characters of ``secrets.token_urlsafe`` (``is_user_id``)."""
    return secrets.token_urlsafe(9)


class Accounts:
    def __init__(
        self,
        store: AccountStore,
        limits: Limits,
        hasher: PasswordHasher,
        tokens: TokenService,
        *,
        login_ip_rate: int,
        register_ip_rate: int = 30,
        register_ip_burst: int = 30,
        guard: LoginGuard | None = None,
        sessions: SessionStore | None = None,
        service: ServiceTokens | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        #: Service tokens (bots), accepted wherever an access token is; None: none accepted.
        self._service = service
        # Never looser than logins: each registration answer tells whether an email has an
        # account (409), which a login answer never does.
        self._register_rate = min(register_ip_rate, login_ip_rate)
        self._register_burst = min(register_ip_burst, login_ip_rate)
        self._guard = guard or LoginGuard(
            limits, DeviceCookies(secrets.token_urlsafe(32)), LoginPolicy()
        )
        self._store = store
        self._limits = limits
        self._hasher = hasher
        self._tokens = tokens
        self._ip_rate = login_ip_rate
        self._clock = clock

    async def register(
        self, email: object, password: object, name: object, *, client: str
    ) -> UserRecord:
        """``client``: the client's address, whose registrations are limited."""
        await self._spend("register-ip", client, self._register_rate / 60, self._register_burst)
        shown_email, email_key = clean_email(email)
        display = default_name(shown_email) if name is None else clean_name(name)
        checked = check_password(password, email=shown_email, name=display)
        # Hash first, then find out whether the email is taken (in create): a 409 costs the
        # hash a 201 costs, so it comes no sooner and is refused by a busy pool alike.
        password_hash = await self._hasher.hash(checked)
        user = UserRecord(new_user_id(), shown_email, display, int(self._clock()))
        if not await self._store.create(user, email_key, password_hash):
            raise ChatError("email_taken", "an account with this email exists", 409)
        return user

    async def login(
        self, email: object, password: object, client: str, *, device: object = None
    ) -> UserRecord:
        """Unknown email and wrong password answer alike, in status, body and time.
        ``device``: the device cookie presented, if any (``chat/core/login_guard.py``)."""
        await self._spend("login-ip", client, self._ip_rate / 60, self._ip_rate)
        if not isinstance(email, str) or not isinstance(password, str):
            raise wrong_credentials()
        attempt = self._guard.attempt(email.strip().lower(), client, device)
        cooling = await self._guard.cooling(attempt)
        if cooling:
            raise rate_limited(cooling)
        account = await self._verified(attempt.email_key, password)
        if account is None:
            await self._guard.failed(attempt)
            raise wrong_credentials()
        await self._guard.succeeded(attempt)
        await self._rehash(attempt.email_key, account, password)
        user = await self._store.user(account.user_id)
        if user is None:
            raise wrong_credentials()
        return user

    def device_cookie(self, email: object, presented: object = None) -> str:
        """The device cookie to set after a successful login or registration of ``email``."""
        email_key = email.strip().lower() if isinstance(email, str) else ""
        return self._guard.devices.issue(email_key, presented)

    async def _verified(self, email_key: str, password: str) -> Account | None:
        """The account if the password is its password; an unknown email costs a dummy
        verification, so that it answers in the time a wrong password takes."""
        account = await self._store.account(email_key) if len(password) <= MAX_LENGTH else None
        if account is None:
            await self._hasher.verify_dummy(password[:MAX_LENGTH])
            return None
        return account if await self._hasher.verify(account.password_hash, password) else None

    async def _rehash(self, email_key: str, account: Account, password: str) -> None:
        """Rehash with raised parameters, when the pool has room for it: a busy pool leaves
        it to a later login rather than failing this one."""
        if not self._hasher.needs_rehash(account.password_hash):
            return
        try:
            rehashed = await self._hasher.hash(password, check_policy=False)
        except ChatError as exc:
            if exc.code != "unavailable":
                raise
            return
        await self._store.set_password_hash(email_key, rehashed)

    async def _spend(self, scope: str, client: str, per_second: float, burst: int) -> None:
        _, wait = await self._limits.take(scope, client, per_second, burst)
        if wait:
            raise rate_limited(wait)

    async def authenticate(self, token: object) -> Claims:
        """A valid token that was not revoked (checked on every handshake and request): a
        user's access token, or a service token (``chat/core/service.py``)."""
        if isinstance(token, str) and token.startswith(SERVICE_PREFIX):
            if self._service is None:
                raise unauthorized("invalid token")
            return await self._service.authenticate(token)
        claims = self._tokens.verify(token)
        await self.check(claims)
        return claims

    async def check(self, claims: Claims) -> None:
        """Refuse a token that was logged out (the denylist), whose sign-in ended, or that was
        issued before a "log out everywhere" (``chat/core/sessions.py``).  The reads go out
        together: one round trip.  A service token: its record, in force."""
        if claims.svc:
            if self._service is None:
                raise unauthorized("token revoked", reason=TOKEN_REVOKED)
            await self._service.check(claims)
            return
        denied = self._limits.is_revoked(claims.jti)
        if self._sessions is None:
            ended = await denied
        else:
            alive = self._sessions.alive(claims.sub, claims.fam, claims.gen)
            revoked, live = await asyncio.gather(denied, alive)
            ended = revoked or not live
        if ended:
            raise unauthorized("token revoked", reason=TOKEN_REVOKED)

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
        renamed = msgspec.structs.replace(user, name=clean_name(name))
        await self._store.set_name(user.id, renamed.name)
        return renamed
