"""HTTP routes of the node (health and readiness; the REST API grows here)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Readiness = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]


def health_routes(readiness: Readiness) -> list[web.RouteDef]:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(request: web.Request) -> web.Response:
        ready, detail = await readiness()
        return web.json_response({"ready": ready, **detail}, status=200 if ready else 503)

    return [web.get("/healthz", healthz), web.get("/readyz", readyz)]
