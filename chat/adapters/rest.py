"""REST routes of the contract: accounts, users, and the compatibility routes of the original
single-room REST chat (``/user/``, ``/message/``, acting on the lobby)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from typing import Any

from aiohttp import web

from chat.adapters.http import client_address, error_response, json_body, request_token
from chat.adapters.rest_changes import ROWS as CHANGE_ROWS
from chat.adapters.rest_changes import ChangeRoutes
from chat.adapters.rest_moderation import ROWS as MODERATION_ROWS
from chat.adapters.rest_moderation import ModerationRoutes
from chat.adapters.rest_people import ROWS as PEOPLE_ROWS
from chat.adapters.rest_people import PeopleRoutes
from chat.adapters.rest_rooms import ROWS as ROOM_ROWS
from chat.adapters.rest_rooms import RoomRoutes
from chat.adapters.shared_read import SharedRead
from chat.core.accounts import Accounts
from chat.core.changes import Changes
from chat.core.deletion import AccountDeletion
from chat.core.devices import COOKIE as DEVICE_COOKIE
from chat.core.devices import TTL as DEVICE_TTL
from chat.core.limiter import EventLimiter
from chat.core.messaging import Messaging
from chat.core.moderation import Moderation
from chat.core.people import People
from chat.core.reading import Reading
from chat.core.recovery import Recovery
from chat.core.renaming import Renaming
from chat.core.rooms import LOBBY, Rooms
from chat.core.sessions import Sessions, SignedIn
from chat.core.tokens import COOKIE, REFRESH_COOKIE, Claims, cookie_token
from chat.errors import ChatError, invalid_request
from chat.models import UserRecord, encode_json, to_wire
from chat.ports import History

Online = Callable[[list[str]], Awaitable[dict[str, bool]]]
COMPAT_PAGE = 100
#: The refresh cookie goes to this route only: no other request carries it.  (Logout finds
#: the sign-in to end in the access token, and clears this cookie by its path.)
REFRESH_PATH = "/api/refresh"

#: The row of the limit table (``chat/config.py`` ``EVENT_LIMITS``) that each signed-in route
#: spends, for its user, once the token is verified; the same row as the matching socket
#: event.  Routes without sign-in are in ``PUBLIC`` (register and login have throttles of their
#: own).  A route in neither is refused by ``check_rows``, which the node runs at start.
ROUTE_ROWS = {
    "POST /api/logout": "logout",
    "GET /api/me": "me",
    "PATCH /api/me": "rename",
    "GET /api/users/{id}": "user",
    **ROOM_ROWS,
    **CHANGE_ROWS,
    **MODERATION_ROWS,
    **PEOPLE_ROWS,
    "POST /message/": "send",
}
PUBLIC = frozenset(
    {"POST /api/register", "POST /api/login", "POST /user/", "PUT /user/", "GET /message/"}
    | {"POST /api/refresh"}  # limited per client address and per sign-in (core/sessions.py)
)


def route_name(method: str, path: str) -> str:
    return f"{'GET' if method == 'HEAD' else method} {path}"


def check_rows(routes: list[web.RouteDef], limiter: EventLimiter) -> None:
    for route in routes:
        name = route_name(route.method, route.path)
        if name not in PUBLIC:
            if name not in ROUTE_ROWS:
                raise LookupError(f"route {name} has no row in rest.ROUTE_ROWS")
            limiter.row(ROUTE_ROWS[name])


@dataclass
class Rest(RoomRoutes, ChangeRoutes, ModerationRoutes, PeopleRoutes):
    accounts: Accounts
    renaming: Renaming
    messaging: Messaging
    rooms: Rooms
    recovery: Recovery
    history: History
    online: Online
    token_ttl: int
    cookie_secure: bool
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...]
    limiter: EventLimiter
    sessions: Sessions
    reading: Reading
    changes: Changes
    moderation: Moderation
    people: People | None = None
    deletion: AccountDeletion | None = None

    def __post_init__(self) -> None:
        # Anyone may ask for it, as often as they like: one read in flight per node, shared
        # by every request that came while the one before it was out.
        self._lobby_page = SharedRead(self._read_lobby_page)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/register", self.register),
            web.post("/api/login", self.login),
            web.post("/api/logout", self.logout),
            web.post(REFRESH_PATH, self.refresh),
            web.get("/api/me", self.me),
            web.patch("/api/me", self.rename),
            web.get("/api/users/{id}", self.user),
            *self.room_routes(),
            *self.change_routes(),
            *self.moderation_routes(),
            *self.people_routes(),
            web.post("/user/", self.compat_register),
            web.put("/user/", self.compat_login),
            web.post("/message/", self.compat_send),
            web.get("/message/", self.compat_messages),
        ]

    # --- helpers ---------------------------------------------------------------------------

    async def _claims(self, request: web.Request) -> Claims:
        """The verified token; the route's limit row is spent for its user (every signed-in
        route comes here first)."""
        claims = await self.accounts.authenticate(request_token(request))
        resource = request.match_info.route.resource
        path = resource.canonical if resource is not None else request.path
        await self.limiter.take(ROUTE_ROWS[route_name(request.method, path)], claims.sub)
        return claims

    def _with_cookie(self, response: web.Response, token: str) -> web.Response:
        response.set_cookie(
            COOKIE,
            token,
            max_age=self.token_ttl,
            path="/",
            httponly=True,
            samesite="Lax",
            secure=self.cookie_secure,
        )
        return no_store(response)

    def _signed_in(self, signed: SignedIn, status: int) -> web.Response:
        """Both tokens in the body (bots) and in HttpOnly cookies (the web client, which never
        reads them)."""
        response = self._with_cookie(web.json_response(signed.wire(), status=status), signed.token)
        if signed.refresh_token is not None:  # None: the newer one is out already
            response.set_cookie(
                REFRESH_COOKIE,
                signed.refresh_token,
                max_age=self.sessions.refresh_ttl,
                path=REFRESH_PATH,
                httponly=True,
                samesite="Strict",
                secure=self.cookie_secure,
            )
        return response

    def _known(self, response: web.Response, request: web.Request, body: Any) -> web.Response:
        """Mark the device as one the account knows: its logins skip the throttles that fall
        on unknown devices during an attack (``chat/core/login_guard.py``)."""
        cookie = self.accounts.device_cookie(body.get("email"), presented_device(request))
        response.set_cookie(
            DEVICE_COOKIE,
            cookie,
            max_age=DEVICE_TTL,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.cookie_secure,
        )
        return response

    def _device(self, request: web.Request) -> str | None:
        return presented_device(request)

    def _cleared(self, response: web.Response) -> web.Response:
        return clear_cookies(response)

    # --- accounts ----------------------------------------------------------------------------

    async def register(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        client = client_address(request, self.trusted_proxies)
        user = await self.accounts.register(
            body.get("email"), body.get("password"), body.get("name"), client=client
        )
        await self.rooms.welcome(user)
        return self._known(self._signed_in(await self.sessions.begin(user), 201), request, body)

    async def login(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        client = client_address(request, self.trusted_proxies)
        user = await self.accounts.login(
            body.get("email"), body.get("password"), client, device=presented_device(request)
        )
        return self._known(self._signed_in(await self.sessions.begin(user), 200), request, body)

    async def refresh(self, request: web.Request) -> web.Response:
        """The refresh token from the body (bots) or from its cookie (the web client)."""
        body = await json_body(request) if request.can_read_body else {}
        raw = body.get("refresh_token") or cookie_token(
            request.headers.get("Cookie", ""), REFRESH_COOKIE
        )
        try:
            signed = await self.sessions.refresh(raw, client_address(request, self.trusted_proxies))
        except ChatError as exc:
            if exc.status != 401:
                raise
            return clear_cookies(error_response(exc), COOKIE)  # a dead one is of no use
        return self._signed_in(signed, 200)

    async def logout(self, request: web.Request) -> web.Response:
        """This sign-in, or with ``{"everywhere": true}`` every sign-in of the user."""
        claims = await self._claims(request)
        body = await json_body(request) if request.can_read_body else {}
        everywhere = body.get("everywhere", False)
        if not isinstance(everywhere, bool):
            raise invalid_request("everywhere must be true or false")
        if everywhere:
            await self.sessions.logout_everywhere(claims)
        else:
            await self.sessions.logout(claims)
        return clear_cookies(web.Response(status=204))

    async def me(self, request: web.Request) -> web.Response:
        claims = await self._claims(request)
        user = await self.accounts.me(claims.sub)
        expires_in = max(0, claims.exp - int(time.time()))  # when the client should refresh
        return web.json_response({"user": user.private(), "expires_in": expires_in})

    async def rename(self, request: web.Request) -> web.Response:
        claims = await self._claims(request)
        body = await json_body(request)
        user = await self.renaming.rename(claims.sub, body.get("name"))
        return web.json_response({"user": user.private()})

    async def user(self, request: web.Request) -> web.Response:
        await self._claims(request)
        user = await self.accounts.find(request.match_info["id"])
        online = await self.online([user.id])
        return web.json_response({"user": {**user.public(), "online": online[user.id]}})

    async def _user(self, request: web.Request) -> UserRecord:
        return await self.accounts.me((await self._claims(request)).sub)

    # --- compatibility routes (seed 000's single-room REST chat) ----------------------------

    async def compat_register(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        client = client_address(request, self.trusted_proxies)
        user = await self.accounts.register(
            body.get("email"), body.get("password"), body.get("name"), client=client
        )
        await self.rooms.welcome(user)
        token = await self.sessions.access(user)
        answer = web.json_response({**user.private(), "authKey": token}, status=201)
        return self._known(no_store(answer), request, body)

    async def compat_login(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        client = client_address(request, self.trusted_proxies)
        user = await self.accounts.login(
            body.get("email"), body.get("password"), client, device=presented_device(request)
        )
        token = await self.sessions.access(user)
        answer = self._with_cookie(web.json_response(user.private()), token)
        return self._known(answer, request, body)

    async def compat_send(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        body = await json_body(request)
        message = await self.messaging.send(user, LOBBY, body.get("text"), None)
        return web.json_response(to_wire(message), status=201)

    async def compat_messages(self, request: web.Request) -> web.Response:
        page = await self._lobby_page()
        return web.Response(body=page, content_type="application/json", charset="utf-8")

    async def _read_lobby_page(self) -> bytes:
        messages, _ = await self.history.page(LOBBY, before=None, after=None, limit=COMPAT_PAGE)
        return encode_json([to_wire(m) for m in messages])


def presented_device(request: web.Request) -> str | None:
    return cookie_token(request.headers.get("Cookie", ""), DEVICE_COOKIE)


def no_store(response: web.Response) -> web.Response:
    """Answers that carry a token must not be kept by any cache."""
    response.headers["Cache-Control"] = "no-store"
    return response


def clear_cookies(response: web.Response, *keep: str) -> web.Response:
    """Clear the session cookies (each by the path it was set with), but those in ``keep``."""
    for name, path in ((COOKIE, "/"), (REFRESH_COOKIE, REFRESH_PATH)):
        if name not in keep:
            response.del_cookie(name, path=path)
    return response
