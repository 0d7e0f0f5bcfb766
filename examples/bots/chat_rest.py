"""Credentials of the bots: a service token (``ServiceAccount``, what a bot should use: made by the
operator with ``chat tokens create``), or a person's account through the REST API (``Account``:
log in or register, renew the access token with the refresh token, obeying 429s)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp

log = logging.getLogger("chat_rest")


class Fatal(Exception):
    """A problem retrying cannot fix (the password is not the existing account's)."""


class ServiceAccount:
    """A bot's service token (``svc_…``): no login, no renewal (it does not expire).  The server
    refuses it only once it is revoked (``chat tokens revoke``): then ``login`` raises ``Fatal``,
    since nothing the bot can do brings it back.  Same interface as ``Account``."""

    def __init__(self, token: str, stopping: asyncio.Event | None = None) -> None:
        self.service_token = token
        self.token: str | None = token
        self.stopping = stopping or asyncio.Event()

    async def login(self, url: str) -> str:
        """The token; ``Fatal`` once it was refused (``token`` cleared by the caller)."""
        if self.token is None:
            raise Fatal("the service token was refused: revoked? (chat tokens create a new one)")
        return self.token


class Account:
    """One account.  ``token``, ``refresh_token`` and ``user`` are set by a successful login or
    registration; clear ``token`` when the server refuses it (or ends the socket with
    ``session_end``), and the next ``login`` gets a fresh one: refreshed if it can, else by a
    password login."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        email: str,
        password: str,
        name: str | None = None,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self.http, self.email, self.password, self.name = http, email, password, name
        self.stopping = stopping or asyncio.Event()
        self.token: str | None = None
        self.refresh_token: str | None = None
        self.user: dict[str, Any] = {}

    async def login(self, url: str) -> str:
        """A valid token: refreshed when a refresh token is held (the server rotates it: the
        old one is dead from then on), else a login; register the account if the login is
        refused with 401 (no such account).

        Logins are limited per client address (30 a minute by default): on 429 this waits
        as long as ``Retry-After`` says."""
        while self.token is None and self.refresh_token is not None:
            status, body = await self._post(url, "refresh", {"refresh_token": self.refresh_token})
            if status == 401:  # expired, or the sign-in was ended: log in with the password
                self.refresh_token = None
            else:
                self._accept(status, body, "refreshed")
        while self.token is None:
            status, body = await self._post(url, "login")
            if status == 401:
                status, body = await self._post(url, "register")
                if status == 409:
                    raise Fatal(f"{self.email} exists and the password is not its password")
            self._accept(status, body, "registered" if status == 201 else "logged in")
        return self.token

    async def register(self, url: str) -> str:
        """Register; log in if the account exists.  Both are limited per client address
        (registrations more tightly): on 429 this waits as ``Retry-After`` says."""
        while self.token is None:
            status, body = await self._post(url, "register")
            if status == 409:
                status, body = await self._post(url, "login")
                if status == 401:
                    raise Fatal(f"{self.email} exists and the password is not its password")
            self._accept(status, body, "registered" if status == 201 else "logged in")
        return self.token

    def _accept(self, status: int, body: Any, action: str) -> None:
        if status in (200, 201):
            self.token, self.user = body["token"], body["user"]
            # Absent after a refresh racing another one: the newer refresh token is out already.
            self.refresh_token = body.get("refresh_token", self.refresh_token)
            log.info("%s: %s", action, self.email)
        elif status != 429:  # 429: _post waited already; the caller tries again
            raise ConnectionError(f"{status} {body}")

    async def _post(
        self, url: str, action: str, body: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        if body is None:
            body = {"email": self.email, "password": self.password}
        if action == "register" and self.name:
            body["name"] = self.name
        try:
            async with self.http.post(f"{url}/api/{action}", json=body) as resp:
                data = await resp.json(content_type=None)
                if resp.status == 429:
                    await self._wait(float(resp.headers.get("Retry-After", "1")), action)
                return resp.status, data
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConnectionError(f"{url}: {exc!r}") from exc

    async def _wait(self, seconds: float, action: str) -> None:
        log.warning("%s of %s rate-limited, retrying in %s s", action, self.email, seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)
        if self.stopping.is_set():
            raise ConnectionError("stopping")
