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

from chat.errors import unauthorized

REQUIRED_CLAIMS = ("sub", "iat", "exp", "jti", "iss")
COOKIE = "chat_token"


@dataclass(frozen=True)
class Claims:
    sub: str
    name: str
    jti: str
    iat: int
    exp: int


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

    def issue(self, user_id: str, name: str) -> tuple[str, Claims]:
        now = int(self._clock())
        claims = Claims(
            sub=user_id, name=name, jti=secrets.token_urlsafe(16), iat=now, exp=now + self.ttl
        )
        payload = {
            "sub": claims.sub,
            "name": claims.name,
            "jti": claims.jti,
            "iat": claims.iat,
            "exp": claims.exp,
            "iss": self.issuer,
        }
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
            raise unauthorized("token expired") from None
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
    return Claims(sub=sub, name=name if isinstance(name, str) else "", jti=jti, iat=iat, exp=exp)


def cookie_token(header: str) -> str | None:
    """The token in a ``Cookie`` header's ``chat_token``, if any."""
    try:
        morsel = SimpleCookie(header).get(COOKIE)
    except CookieError:
        return None
    return morsel.value if morsel is not None else None
