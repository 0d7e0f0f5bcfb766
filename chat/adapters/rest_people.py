"""REST routes of blocks, user search and account deletion (``chat/core/people.py``,
``chat/core/deletion.py``), mirroring the ``block``, ``unblock``, ``blocks`` and ``users``
events; part of ``Rest`` (``rest.py``), which signs the caller in and spends the route's row."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from ipaddress import IPv4Network, IPv6Network

from aiohttp import web

from chat.adapters.http import client_address, json_body
from chat.core.deletion import AccountDeletion
from chat.core.payloads import BlockIn, DeleteAccountBody, SearchIn, parse
from chat.core.people import People
from chat.core.tokens import Claims

BLOCK = "/api/me/blocks/{id}"
#: The limit row of each route (``rest.ROUTE_ROWS``).
ROWS = {
    "GET /api/me/blocks": "blocks",
    f"PUT {BLOCK}": "block",
    f"DELETE {BLOCK}": "block",
    "GET /api/users": "search",
    "DELETE /api/me": "delete_account",
}


class PeopleRoutes:
    people: People | None
    deletion: AccountDeletion | None
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...]
    _claims: Callable[[web.Request], Awaitable[Claims]]
    _device: Callable[[web.Request], str | None]
    _cleared: Callable[[web.Response], web.Response]

    def people_routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/me/blocks", self.blocks_list),
            web.put(BLOCK, self.block_put),
            web.delete(BLOCK, self.block_delete),
            web.get("/api/users", self.users_search),
            web.delete("/api/me", self.me_delete),
        ]

    @property
    def _people(self) -> People:
        if self.people is None:
            raise RuntimeError("Rest was built without people")
        return self.people

    async def blocks_list(self, request: web.Request) -> web.Response:
        claims = await self._claims(request)
        return web.json_response({"users": await self._people.blocks(claims.sub)})

    async def block_put(self, request: web.Request) -> web.Response:
        claims = await self._claims(request)
        await self._people.block(claims.sub, _blocked(request))
        return web.Response(status=204)

    async def block_delete(self, request: web.Request) -> web.Response:
        claims = await self._claims(request)
        await self._people.unblock(claims.sub, _blocked(request))
        return web.Response(status=204)

    async def users_search(self, request: web.Request) -> web.Response:
        await self._claims(request)
        query = parse(dict(request.query), SearchIn, strict=False)
        return web.json_response(await self._people.search(query.prefix, query.offset, query.limit))

    async def me_delete(self, request: web.Request) -> web.Response:
        """The password again, checked as a login checks it; then the account is gone, and so
        are the session cookies."""
        claims = await self._claims(request)
        body = parse(await json_body(request), DeleteAccountBody)
        if self.deletion is None:
            raise RuntimeError("Rest was built without account deletion")
        client = client_address(request, self.trusted_proxies)
        await self.deletion.delete_own(claims.sub, body.password, client, self._device(request))
        return self._cleared(web.Response(status=204))


def _blocked(request: web.Request) -> str:
    """The user of ``/api/me/blocks/{id}``, checked as the ``block`` event's (a malformed id is
    ``invalid_request``, not ``no_user``)."""
    return parse({"user": request.match_info["id"]}, BlockIn).user
