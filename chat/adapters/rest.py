"""REST routes of the contract: accounts, users, and the compatibility routes of the original
single-room REST chat (``/user/``, ``/message/``, acting on the lobby)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

from aiohttp import web

from chat.adapters.http import client_address, json_body, request_token
from chat.core.accounts import Accounts
from chat.core.messaging import Messaging
from chat.core.payloads import HistoryQuery, MessageBody, parse
from chat.core.profile import Profile
from chat.core.recovery import Recovery
from chat.core.rooms import LOBBY, Rooms
from chat.core.tokens import COOKIE, Claims
from chat.models import UserRecord, to_wire
from chat.ports import History

Online = Callable[[list[str]], Awaitable[dict[str, bool]]]
COMPAT_PAGE = 100


@dataclass
class Rest:
    accounts: Accounts
    profile: Profile
    messaging: Messaging
    rooms: Rooms
    recovery: Recovery
    history: History
    online: Online
    token_ttl: int
    cookie_secure: bool
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...]

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/register", self.register),
            web.post("/api/login", self.login),
            web.post("/api/logout", self.logout),
            web.get("/api/me", self.me),
            web.patch("/api/me", self.rename),
            web.get("/api/users/{id}", self.user),
            web.get("/api/rooms", self.rooms_list),
            web.post("/api/rooms", self.rooms_create),
            web.get("/api/rooms/{id}/messages", self.room_messages),
            web.post("/api/rooms/{id}/messages", self.room_send),
            web.post("/user/", self.compat_register),
            web.put("/user/", self.compat_login),
            web.post("/message/", self.compat_send),
            web.get("/message/", self.compat_messages),
        ]

    # --- helpers ---------------------------------------------------------------------------

    async def _claims(self, request: web.Request) -> Claims:
        return await self.accounts.authenticate(request_token(request))

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
        return response

    def _session(self, user: UserRecord, token: str, status: int) -> web.Response:
        body = {"user": user.private(), "token": token}
        return self._with_cookie(web.json_response(body, status=status), token)

    # --- accounts ----------------------------------------------------------------------------

    async def register(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        user, token = await self.accounts.register(
            body.get("email"), body.get("password"), body.get("name")
        )
        return self._session(user, token, 201)

    async def login(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        client = client_address(request, self.trusted_proxies)
        user, token = await self.accounts.login(body.get("email"), body.get("password"), client)
        return self._session(user, token, 200)

    async def logout(self, request: web.Request) -> web.Response:
        await self.accounts.logout(await self._claims(request))
        response = web.Response(status=204)
        response.del_cookie(COOKIE, path="/")
        return response

    async def me(self, request: web.Request) -> web.Response:
        user = await self.accounts.me((await self._claims(request)).sub)
        return web.json_response({"user": user.private()})

    async def rename(self, request: web.Request) -> web.Response:
        claims = await self._claims(request)
        body = await json_body(request)
        user = await self.profile.rename(claims.sub, body.get("name"))
        return web.json_response({"user": user.private()})

    async def user(self, request: web.Request) -> web.Response:
        await self._claims(request)
        user = await self.accounts.find(request.match_info["id"])
        online = await self.online([user.id])
        return web.json_response({"user": {**user.public(), "online": online[user.id]}})

    # --- rooms and messages --------------------------------------------------------------------

    async def _user(self, request: web.Request) -> UserRecord:
        return await self.accounts.me((await self._claims(request)).sub)

    async def rooms_list(self, request: web.Request) -> web.Response:
        return web.json_response({"rooms": await self.rooms.visible(await self._user(request))})

    async def rooms_create(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        body = await json_body(request)
        room = await self.rooms.create(
            user, body.get("id"), body.get("name"), body.get("private", False)
        )
        return web.json_response({"room": room}, status=201)

    async def room_messages(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        query = parse(dict(request.query), HistoryQuery, strict=False)
        page = await self.recovery.page(
            user.id,
            request.match_info["id"],
            before=query.before,
            after=query.after,
            limit=query.limit,
        )
        return web.json_response(page)

    async def room_send(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        body = parse(await json_body(request), MessageBody)
        message = await self.messaging.send(user, request.match_info["id"], body.text, body.cid)
        return web.json_response({"message": to_wire(message)}, status=201)

    # --- compatibility routes (seed 000's single-room REST chat) ----------------------------

    async def compat_register(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        user, token = await self.accounts.register(
            body.get("email"), body.get("password"), body.get("name")
        )
        return web.json_response({**user.private(), "authKey": token}, status=201)

    async def compat_login(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        client = client_address(request, self.trusted_proxies)
        user, token = await self.accounts.login(body.get("email"), body.get("password"), client)
        return self._with_cookie(web.json_response(user.private()), token)

    async def compat_send(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        body = await json_body(request)
        message = await self.messaging.send(user, LOBBY, body.get("text"), None)
        return web.json_response(to_wire(message), status=201)

    async def compat_messages(self, request: web.Request) -> web.Response:
        messages, _ = await self.history.page(LOBBY, before=None, after=None, limit=COMPAT_PAGE)
        return web.json_response([to_wire(m) for m in messages])
