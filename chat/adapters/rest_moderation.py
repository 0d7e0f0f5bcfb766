"""REST routes of moderation and roles (``chat/core/moderation.py``), mirroring the ``kick``,
``ban``, ``unban``, ``mute``, ``unmute``, ``role``, ``transfer`` and ``room_settings`` events
with the same bodies (the room is the path's); part of ``Rest`` (``rest.py``), which signs the
caller in and spends the route's limit row (``moderate``, as the events)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from chat.adapters.http import json_body
from chat.core.moderation import Moderation
from chat.core.payloads import BanIn, ModerateIn, MuteIn, RoleIn, RoomSettingsIn, parse
from chat.models import UserRecord, to_wire

ROOM = "/api/rooms/{id}"
#: Each action's route and body shape.
ACTIONS: dict[str, type[Any]] = {
    "kick": ModerateIn, "ban": BanIn, "unban": ModerateIn, "mute": MuteIn,
    "unmute": ModerateIn, "role": RoleIn, "transfer": ModerateIn,
}  # fmt: skip
#: The limit row of each route (``rest.ROUTE_ROWS``).
ROWS = {
    **{f"POST {ROOM}/{action}": "moderate" for action in ACTIONS},
    f"PATCH {ROOM}": "moderate",
}


class ModerationRoutes:
    moderation: Moderation
    _user: Callable[[web.Request], Awaitable[UserRecord]]

    def moderation_routes(self) -> list[web.RouteDef]:
        return [
            *(web.post(f"{ROOM}/{action}", self._action(action)) for action in ACTIONS),
            web.patch(ROOM, self.room_settings),
        ]

    def _action(self, action: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        shape = ACTIONS[action]

        async def route(request: web.Request) -> web.Response:
            user = await self._user(request)
            req = parse({**await json_body(request), "room": request.match_info["id"]}, shape)
            entry = await self.moderation.act(
                user, action, req.room, req.user, duration_s=getattr(req, "duration_s", None),
                role=getattr(req, "role", None),
            )  # fmt: skip
            return web.json_response({"message": None if entry is None else to_wire(entry)})

        route.__name__ = f"room_{action}"
        return route

    async def room_settings(self, request: web.Request) -> web.Response:
        user = await self._user(request)
        body = {**await json_body(request), "room": request.match_info["id"]}
        req = parse(body, RoomSettingsIn)
        room = await self.moderation.settings(user, req.room, req.managed, req.member_limit)
        return web.json_response({"room": room})
