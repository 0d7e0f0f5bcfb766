"""Device cookies (OWASP "Slow down online guessing attacks with device cookies").

A successful login or registration gives the browser (or bot) a cookie that says "this device
signed in to this account before": ``<id>.<expiry>.<signature>``, an HMAC-SHA256 over the
account's email (normalised), a random device id and the expiry, with a key derived from the
node's JWT signing key (so every node of a deployment accepts what any node issued, and no
extra secret must be configured).  The cookie names no account: only a login for the account
it was issued for can tell that it is valid.

It is no credential: it lets a login attempt for *its* account skip the throttles that fall on
unknown devices during an attack (``chat/core/login_guard.py``); its own failures are counted
against it instead.  Rotating the JWT key makes every device unknown again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable

COOKIE = "chat_device"
#: How long a device stays known without a login (each successful login renews it).
TTL = 180 * 86400
_SHAPE = re.compile(r"^([A-Za-z0-9_-]{22})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})$")


class DeviceCookies:
    def __init__(
        self, signing_key: str, *, ttl: int = TTL, clock: Callable[[], float] = time.time
    ) -> None:
        # A key of its own: a device cookie can never pass for a JWT signature or vice versa.
        self._key = hmac.new(signing_key.encode(), b"chat device cookie v1", "sha256").digest()
        self.ttl = ttl
        self._clock = clock

    def device(self, email_key: str, cookie: object) -> str | None:
        """The device id of a cookie valid for this account and not expired, else None."""
        found = _SHAPE.fullmatch(cookie) if isinstance(cookie, str) and len(cookie) < 100 else None
        if found is None:
            return None
        device, expires, signature = found.groups()
        if int(expires) < self._clock():
            return None
        if not hmac.compare_digest(signature, self._sign(email_key, device, expires)):
            return None
        return device

    def issue(self, email_key: str, presented: object = None) -> str:
        """A cookie for a device that just signed in: the presented one's device id when it
        was valid (its failure record stays its own), a new one otherwise; a fresh expiry."""
        device = self.device(email_key, presented) or secrets.token_urlsafe(16)
        expires = str(int(self._clock()) + self.ttl)
        return f"{device}.{expires}.{self._sign(email_key, device, expires)}"

    def _sign(self, email_key: str, device: str, expires: str) -> str:
        message = f"{email_key}\n{device}\n{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
