"""JWT issue and verification.

The accepted algorithm comes from configuration, never from the token: the header's ``alg``
is only compared against it, so ``alg: none`` and algorithm-confusion tokens are refused.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

import jwt

from chat.errors import TOKEN_EXPIRED, unauthorized

REQUIRED_CLAIMS = ("sub", "iat", "exp", "jti", "iss")
COOKIE = "chat_token"
#: The refresh token's cookie (see ``chat/core/sessions.py``).
REFRESH_COOKIE = "chat_refresh"
#: How a service token (``chat/core/service.py``) begins; no JWT does (they begin ``eyJ``).
SERVICE_PREFIX = "svc_"


@dataclass(frozen=True)
class Claims:
    sub: str
    name: str
    jti: str
    iat: int
    exp: int
    #: The sign-in (refresh family) the token was issued for; "" for tokens issued without
    #: one (the compatibility routes, ``chat token``).
    fam: str = ""
    #: The user's session generation when the token was issued: "log out everywhere" raises
    #: it, and tokens of an older generation are refused.
    gen: int = 0
    #: The id of the service token these are the claims of; "" for a user's JWT.
    svc: str = ""


class TokenService:
    def __init__(
        self,
        *,
        signing_key: str,
        verifying_key: str | None = None,
        issuer: str,
        algorithm: str = "HS256",
        ttl: int = 3600,
        leeway: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._signing_key = signing_key
        self._verifying_key = verifying_key or signing_key
        self.issuer = issuer
        self.algorithm = algorithm
        self.ttl = ttl
        self._leeway = leeway
        self._clock = clock

    def issue(
        self, user_id: str, name: str, *, family: str = "", gen: int = 0
    ) -> tuple[str, Claims]:
        now = int(self._clock())
        jti = secrets.token_urlsafe(16)
        claims = Claims(user_id, name, jti, now, now + self.ttl, fam=family, gen=gen)
        payload: dict[str, object] = {
            "sub": claims.sub,
            "name": claims.name,
            "jti": claims.jti,
            "iat": claims.iat,
            "exp": claims.exp,
            "iss": self.issuer,
        }
        if family:
            payload["fam"] = family
        if gen:
            payload["gen"] = gen
        token = jwt.encode(payload, self._signing_key, algorithm=self.algorithm)
        return token, claims

    def verify(self, token: object) -> Claims:
        """Return the claims of a valid token; raise ``unauthorized`` for anything else."""
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise unauthorized("a token is required")
        try:
            payload = jwt.decode(
                token,
                self._verifying_key,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("token expired", reason=TOKEN_EXPIRED) from None
        except jwt.PyJWTError:
            raise unauthorized("invalid token") from None
        return _claims(payload)


def _claims(payload: dict[str, object]) -> Claims:
    sub, jti, name = payload.get("sub"), payload.get("jti"), payload.get("name", "")
    iat, exp = payload.get("iat"), payload.get("exp")
    if not (isinstance(sub, str) and sub and isinstance(jti, str) and jti):
        raise unauthorized("invalid token")
    if not (isinstance(iat, int) and isinstance(exp, int)):
        raise unauthorized("invalid token")
    fam, gen = payload.get("fam", ""), payload.get("gen", 0)
    if not (isinstance(fam, str) and isinstance(gen, int) and gen >= 0):
        raise unauthorized("invalid token")
    shown = name if isinstance(name, str) else ""
    return Claims(sub=sub, name=shown, jti=jti, iat=iat, exp=exp, fam=fam, gen=gen)


def session_cookie(header: str) -> str | None:
    """The token of the ``chat_token`` cookie, unless it is a service token: those are
    accepted as a bearer or in the Socket.IO ``auth`` only.  A cookie is sent by the browser
    with every request, whoever made the page (CSRF); a bot never needs one, so a bot token
    that ended up in a cookie is refused rather than made an ambient credential."""
    token = cookie_token(header)
    return None if token is not None and token.startswith(SERVICE_PREFIX) else token


def cookie_token(header: str, name: str = COOKIE) -> str | None:
    """The token in a ``Cookie`` header's ``chat_token`` (or ``name``), if any."""
    try:
        morsel = SimpleCookie(header).get(name)
    except CookieError:
        return None
    return morsel.value if morsel is not None else None
