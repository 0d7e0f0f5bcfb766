"""Sign-ins: short-lived access tokens renewed with a rotating refresh token, and logout of one
sign-in or of every sign-in of a user.

A login or registration starts a *family*: the client gets an access token (a JWT naming the
family and the user's session generation, ``CHAT_TOKEN_TTL``) and a refresh token
``<user id>.<family>.<secret>`` (``CHAT_REFRESH_TTL``, renewed by every use).  Each refresh
rotates the secret.  Presenting a secret that was already rotated is the sign of a stolen
token (OAuth 2.0 Security BCP): the whole family ends, and with it every access token issued
for it.  One exception, ``REUSE_GRACE``: the previous secret, within seconds of its rotation,
is two tabs refreshing at once with one cookie; it gets an access token but no new refresh
token (the browser holds the newer one already, from the other answer).

"Log out everywhere" ends every family and raises the user's generation: every access token
issued before carries an older one and is refused (a counter, not a timestamp, so node clocks
play no part in it).  Every end is announced on the user's channel, where each node ends the
sockets concerned (``chat/core/lifetime.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chat.core.controls import Revoke, control
from chat.core.tokens import Claims, TokenService
from chat.errors import TOKEN_REVOKED, forbidden, rate_limited, unauthorized
from chat.models import UserRecord, is_user_id
from chat.ports import AccountStore, Broker, Limits, SessionStore

#: Seconds after a rotation during which the previous secret is a concurrent refresh, not a
#: reuse.  Long enough for two tabs' requests on a slow link, short for a thief.
REUSE_GRACE = 10.0
#: Live sign-ins per user; a new one beyond this ends the least recently used.
MAX_FAMILIES = 100
#: Refreshes per minute of one family (a client needs one per access token lifetime).  Per
#: family rather than per user: a stranger who knows a user id cannot lock the user out.
FAMILY_REFRESH_RATE = 10
REFRESH_INVALID = "refresh token unknown, expired or revoked: sign in again"
SERVICE_LOGOUT = "a service token is revoked by its operator (chat tokens revoke), not logged out"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class RefreshToken:
    user: str
    family: str
    secret: str

    def __str__(self) -> str:
        return f"{self.user}.{self.family}.{self.secret}"

    @classmethod
    def parse(cls, raw: object) -> RefreshToken:
        parts = raw.split(".") if isinstance(raw, str) and len(raw) <= 200 else []
        # The family and the secret are token_urlsafe text of at most 43 characters: the
        # alphabet and bound of a user id, so one rule checks the three parts.
        if len(parts) != 3 or not all(map(is_user_id, parts)):
            raise unauthorized("a valid refresh token is required")
        return cls(*parts)


@dataclass(frozen=True)
class SignedIn:
    """What a login, registration or refresh answers."""

    user: UserRecord
    token: str
    expires_in: int
    #: None when a refresh inside the reuse grace got an access token only.
    refresh_token: str | None

    def wire(self) -> dict[str, Any]:
        body = {"user": self.user.private(), "token": self.token, "expires_in": self.expires_in}
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        return body


class Sessions:
    def __init__(
        self,
        store: SessionStore,
        users: AccountStore,
        limits: Limits,
        tokens: TokenService,
        broker: Broker,
        *,
        refresh_ttl: int,
        refresh_ip_rate: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._users = users
        self._limits = limits
        self._tokens = tokens
        self._broker = broker
        self.refresh_ttl = refresh_ttl
        self._ip_rate = refresh_ip_rate
        self._clock = clock

    @property
    def token_ttl(self) -> int:
        return self._tokens.ttl

    async def begin(self, user: UserRecord) -> SignedIn:
        """Start a sign-in for a user whose credentials were just checked."""
        family, secret = secrets.token_urlsafe(12), secrets.token_urlsafe(32)
        ttl_ms = self.refresh_ttl * 1000
        gen = await self._store.start(user.id, family, digest(secret), ttl_ms, MAX_FAMILIES)
        token = self._tokens.issue(user.id, user.name, family=family, gen=gen)[0]
        return SignedIn(user, token, self.token_ttl, str(RefreshToken(user.id, family, secret)))

    async def access(self, user: UserRecord) -> str:
        """An access token outside any sign-in (the compatibility routes): no refresh."""
        gen = await self._store.generation(user.id)
        return self._tokens.issue(user.id, user.name, gen=gen)[0]

    async def refresh(self, raw: object, client: str) -> SignedIn:
        # Parsed first: no token at all (a browser that was never signed in) costs nothing.
        presented = RefreshToken.parse(raw)
        await self._limit("refresh-ip", client, self._ip_rate)
        await self._limit(
            "refresh-family", f"{presented.user}.{presented.family}", FAMILY_REFRESH_RATE
        )
        secret = secrets.token_urlsafe(32)
        outcome, gen = await self._store.rotate(
            presented.user,
            presented.family,
            digest(presented.secret),
            digest(secret),
            self.refresh_ttl * 1000,
            int(REUSE_GRACE * 1000),
        )
        if outcome == "reused":
            await self._announce(presented.user, Revoke(family=presented.family))
            raise unauthorized(
                "refresh token reused: this sign-in has ended, sign in again", reason=TOKEN_REVOKED
            )
        user = await self._users.user(presented.user) if outcome != "unknown" else None
        if user is None:
            raise unauthorized(REFRESH_INVALID, reason=TOKEN_REVOKED)
        token = self._tokens.issue(user.id, user.name, family=presented.family, gen=gen)[0]
        renewed = RefreshToken(user.id, presented.family, secret)
        return SignedIn(user, token, self.token_ttl, str(renewed) if outcome == "rotated" else None)

    async def logout(self, claims: Claims) -> None:
        """End the token and its sign-in everywhere: the denylist for the token, the end of its
        family for the others issued with it, and their sockets on every node."""
        _not_service(claims)
        revoke = self._limits.revoke(claims.jti, claims.exp - self._clock() + 60)
        if claims.fam:
            await asyncio.gather(revoke, self._store.end(claims.sub, claims.fam))
        else:
            await revoke
        await self._announce(claims.sub, Revoke(claims.jti, family=claims.fam))

    async def logout_everywhere(self, claims: Claims) -> None:
        """End every sign-in of the user, every access token issued so far, every socket."""
        _not_service(claims)
        gen = await self._store.end_all(claims.sub)
        # "jti" too: a node of the previous release understands only that.
        await self._announce(claims.sub, Revoke(claims.jti, generation=gen))

    async def _announce(self, user_id: str, notice: Revoke) -> None:
        """After the write: a node that re-checks a new socket after following the user's
        channel either reads the write or receives this (``Connections.open``)."""
        await self._broker.publish(*control(user_id, notice))

    async def _limit(self, scope: str, ident: str, per_minute: int) -> None:
        _, wait = await self._limits.take(scope, ident, per_minute / 60, per_minute)
        if wait:
            raise rate_limited(wait)


def _not_service(claims: Claims) -> None:
    """Logout is for sign-ins.  Refused for a service token rather than ignored: "log out
    everywhere" would raise the bot's session generation for nothing (no service token
    carries one), and a bot must not end the credential its operator manages."""
    if claims.svc:
        raise forbidden(SERVICE_LOGOUT)
