"""REST routes of edits, deletes and reactions (``chat/core/changes.py``), mirroring the
``edit``, ``delete`` and ``react`` events; part of ``Rest`` (``rest.py``), which signs the
caller in and spends the route's limit row (``send``, as the events)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from chat.adapters.http import json_body
from chat.core.changes import Changes
from chat.core.payloads import DeleteIn, EditIn, ReactIn, parse
from chat.models import UserRecord, to_wire

MESSAGE = "/api/rooms/{id}/messages/{message}"
#: The limit row of each route (``rest.ROUTE_ROWS``).
ROWS = {
    f"PATCH {MESSAGE}": "send",
    f"DELETE {MESSAGE}": "send",
    f"POST {MESSAGE}/reactions": "send",
}


class ChangeRoutes:
    changes: Changes
    _user: Callable[[web.Request], Awaitable[UserRecord]]

    def change_routes(self) -> list[web.RouteDef]:
        return [
            web.patch(MESSAGE, self.message_edit),
            web.delete(MESSAGE, self.message_delete),
            web.post(MESSAGE + "/reactions", self.message_react),
        ]

    async def message_edit(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        req = parse(_with_path(request, await json_body(request)), EditIn)
        entry = await self.changes.edit(user, req.room, req.id, req.text, req.cid)
        return web.json_response({"message": to_wire(entry)})

    async def message_delete(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        body = await json_body(request) if request.can_read_body else {}
        req = parse(_with_path(request, body), DeleteIn)
        entry = await self.changes.delete(user, req.room, req.id, req.cid)
        return web.json_response({"message": to_wire(entry)})

    async def message_react(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        req = parse(_with_path(request, await json_body(request)), ReactIn)
        entry = await self.changes.react(user, req.room, req.id, req.emoji, req.on, req.cid)
        return web.json_response({"message": None if entry is None else to_wire(entry)})


def _with_path(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    """The body with the room and message of the path: checked by the event's own shape (an
    id too long is ``invalid_request`` here as there, not ``no_message``)."""
    return {**body, "room": request.match_info["id"], "id": request.match_info["message"]}
