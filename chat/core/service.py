"""Service tokens: long-lived, scoped credentials for bots and backends, made by an operator
(``chat tokens create``), never by a client.

A token is ``svc_<id>_<secret>``: ``id`` (16 hex digits, so no ``_``) names its record and
``secret`` is 32 random bytes.  The record keeps only the SHA-256 of the secret: a secret of 256
random bits needs no slow hash (there is nothing to guess), and whoever reads the store gets no
usable token.  Each token has a bot user of its own (``UserRecord.bot``), which is who it is
everywhere: messages, rooms, limits, roles.

Accepted wherever a user's access token is (the Socket.IO ``auth``, a bearer; never the cookie,
see ``tokens.session_cookie``) and checked against the store of record on every handshake and
request, with no cache: a revoked token is refused at once.  Its open sockets are ended by a
``revoke`` control on the bot user's channel (``Revoke.jti`` = ``jti(id)``), which every node
holding one of them follows (``chat/core/lifetime.py``).

The ``admin`` scope puts the bot's user id in the service admins (``ServiceTokenStore``), read
by the role checks: such a bot acts as an owner of every room.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time
from collections.abc import Awaitable, Callable, Iterable

from chat.core.accounts import new_user_id
from chat.core.controls import Revoke, control
from chat.core.identity import clean_name
from chat.core.tokens import SERVICE_PREFIX, Claims
from chat.errors import TOKEN_REVOKED, invalid_request, not_found, unauthorized
from chat.models import ServiceToken, UserRecord
from chat.ports import AccountStore, ServiceTokenStore

#: ``bot`` every token has; ``admin`` makes its bot an owner of every room.
SCOPES = ("bot", "admin")
ID_LENGTH = 16
#: Service tokens do not expire by time (revocation ends them).  Their claims carry an expiry
#: this far ahead, so that what reads ``exp`` (the sockets' expiry sweep, ``expires_in``) sees
#: a number like any other.
FOREVER = 100 * 365 * 86400
INVALID = "invalid or revoked service token"

#: Publishes a payload on a channel (``Broker.publish``, or the operator command's one-off).
Announce = Callable[[str, bytes], Awaitable[None]]


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def jti(token_id: str) -> str:
    """The claims' ``jti`` of a service token: names its sockets (``jti:<jti>``)."""
    return f"svc-{token_id}"


def is_service_token(raw: object) -> bool:
    return isinstance(raw, str) and raw.startswith(SERVICE_PREFIX)


def parse(raw: object) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed service token, else None."""
    if not isinstance(raw, str) or len(raw) > 200 or not raw.startswith(SERVICE_PREFIX):
        return None
    ident, sep, secret = raw[len(SERVICE_PREFIX) :].partition("_")
    hexadecimal = len(ident) == ID_LENGTH and all(c in string.hexdigits for c in ident)
    if not (sep and hexadecimal and secret):
        return None
    return ident.lower(), secret


def clean_scopes(raw: Iterable[object]) -> list[str]:
    """The scopes, in ``SCOPES`` order, ``bot`` always among them."""
    wanted = set(raw)
    unknown = wanted - set(SCOPES)
    if unknown:
        shown = ", ".join(sorted(map(str, unknown)))
        raise invalid_request(f"unknown scope {shown}: use {' or '.join(SCOPES)}")
    return [scope for scope in SCOPES if scope in wanted or scope == "bot"]


class ServiceTokens:
    def __init__(
        self,
        store: ServiceTokenStore,
        users: AccountStore,
        announce: Announce | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._users = users
        self._announce = announce
        self._clock = clock

    async def create(self, name: object, scopes: Iterable[object]) -> tuple[ServiceToken, str]:
        """A new token and its bot user: the record and the token, shown this once."""
        display, granted = clean_name(name), clean_scopes(scopes)
        now = self._clock()
        user = UserRecord(new_user_id(), "", display, int(now), bot=True)
        # The user first: a token is never in force without its user.
        await self._users.create_bot(user)
        ident, secret = secrets.token_hex(ID_LENGTH // 2), secrets.token_urlsafe(32)
        record = ServiceToken(ident, display, user.id, granted, int(now * 1000), digest(secret))
        await self._store.add(record)
        return record, f"{SERVICE_PREFIX}{ident}_{secret}"

    async def list(self) -> list[ServiceToken]:
        return sorted(await self._store.all(), key=lambda t: (t.created, t.id))

    async def revoke(self, token_id: str) -> ServiceToken:
        """Revoke, then end the token's sockets on every node.  Revoking a revoked token again
        announces again (an operator's retry after a failed announcement)."""
        record = await self._store.revoke(token_id.strip().lower(), int(self._clock() * 1000))
        if record is None:
            raise not_found("no_token", "no such service token")
        if self._announce is not None:
            await self._announce(*control(record.user, Revoke(jti=jti(record.id))))
        return record

    async def is_admin(self, user_id: str) -> bool:
        return await self._store.is_admin(user_id)

    async def authenticate(self, raw: object) -> Claims:
        """The claims of a service token in force; ``unauthorized`` for anything else (one
        answer for an unknown id, a wrong secret and a revoked token)."""
        parsed = parse(raw)
        record = await self._store.get(parsed[0]) if parsed is not None else None
        if parsed is None or record is None or record.revoked:
            raise unauthorized(INVALID, reason=TOKEN_REVOKED)
        if not hmac.compare_digest(record.hash, digest(parsed[1])):
            raise unauthorized(INVALID, reason=TOKEN_REVOKED)
        now = int(self._clock())
        iat = record.created // 1000
        return Claims(record.user, record.name, jti(record.id), iat, now + FOREVER, svc=record.id)

    async def check(self, claims: Claims) -> None:
        """Refuse the claims of a token revoked since they were read (``Accounts.check``)."""
        record = await self._store.get(claims.svc)
        if record is None or record.revoked or record.user != claims.sub:
            raise unauthorized(INVALID, reason=TOKEN_REVOKED)
