"""REST routes of rooms, their messages, read positions and the user's settings, mirroring
the ``rooms``, ``create``, ``history``, ``send``, ``read`` and ``settings`` events; part of
``Rest`` (``rest.py``), which signs the caller in and spends the route's row."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from chat.adapters.http import json_body
from chat.core.messaging import Messaging
from chat.core.payloads import HistoryQuery, MessageBody, ReadBody, SettingsIn, parse
from chat.core.reading import Reading
from chat.core.recovery import Recovery
from chat.core.rooms import Rooms
from chat.models import UserRecord, to_wire

#: The limit row of each route (``rest.ROUTE_ROWS``).
ROWS = {
    "GET /api/rooms": "rooms",
    "POST /api/rooms": "create_room",
    "GET /api/rooms/{id}/messages": "history",
    "POST /api/rooms/{id}/messages": "send",
    "POST /api/rooms/{id}/read": "read",
    "GET /api/me/settings": "settings",
    "PATCH /api/me/settings": "settings",
}


class RoomRoutes:
    messaging: Messaging
    rooms: Rooms
    recovery: Recovery
    reading: Reading
    _user: Callable[[web.Request], Awaitable[UserRecord]]

    def room_routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/rooms", self.rooms_list),
            web.post("/api/rooms", self.rooms_create),
            web.get("/api/rooms/{id}/messages", self.room_messages),
            web.post("/api/rooms/{id}/messages", self.room_send),
            web.post("/api/rooms/{id}/read", self.room_read),
            web.get("/api/me/settings", self.settings_get),
            web.patch("/api/me/settings", self.settings_set),
        ]

    async def rooms_list(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        rooms = await self.reading.with_counts(user.id, await self.rooms.visible(user))
        return web.json_response({"rooms": rooms})

    async def rooms_create(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        body = await json_body(request)
        room = await self.rooms.create(
            user, body.get("id"), body.get("name"), body.get("private", False),
            body.get("managed", False), body.get("member_limit"),
        )  # fmt: skip
        return web.json_response({"room": room}, status=201)

    async def room_messages(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        query = parse(dict(request.query), HistoryQuery, strict=False)
        page = await self.recovery.page(  # ``my_reactions`` are the caller's
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
        message = await self.messaging.send(
            user, request.match_info["id"], body.text, body.cid, mentions=body.mentions
        )
        return web.json_response({"message": to_wire(message)}, status=201)

    async def room_read(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        body = parse(await json_body(request), ReadBody)
        room = await self.reading.read(user, request.match_info["id"], body.seq)
        return web.json_response({"room": room})

    async def settings_get(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        return web.json_response({"settings": {"receipts": user.receipts}})

    async def settings_set(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        body = parse(await json_body(request), SettingsIn)
        if body.receipts is None:
            return web.json_response({"settings": {"receipts": user.receipts}})
        return web.json_response({"settings": await self.reading.set_receipts(user, body.receipts)})
