"""HTTP plumbing of the node: JSON errors, origin checks and CORS, security headers, the
client's address, the token of a request, health routes and the metrics listener.  The REST
routes themselves are in ``rest.py``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any

from aiohttp import web, web_response

from chat.core.tokens import session_cookie
from chat.errors import ChatError, internal, invalid_request, unauthorized

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Readiness = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
SOCKETIO_PATH = "/socket.io/"

_HTTP_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def error_response(error: ChatError) -> web.Response:
    response = web.json_response({"error": error.to_wire()}, status=error.status)
    if error.retry_after:
        response.headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return response


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as ``{"error": {"code", "message"}}``; nothing else escapes."""
    try:
        return await handler(request)
    except ChatError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        return error_response(ChatError(code, exc.reason, exc.status))
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(internal())


def origin_guard(allowed: tuple[str, ...]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Refuse browser requests from origins outside the allowlist (the node's own origin is
    always allowed); answer CORS for allowed ones.  Requests without ``Origin`` (scripts,
    bots) pass.  Socket.IO checks origins itself, with the same rule."""
    allow = frozenset(allowed)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or request.path.startswith(SOCKETIO_PATH):
            return await handler(request)
        own = origin == f"{request.scheme}://{request.host}"
        if not own and origin not in allow:
            raise ChatError("forbidden_origin", "this origin may not use the API", 403)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, PATCH, DELETE"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
        else:
            response = await handler(request)
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Origin"
        return response

    return guard


def client_address(request: web.Request, trusted: tuple[IPv4Network | IPv6Network, ...]) -> str:
    """Who the per-address limits count: the peer's address; when the peer is a trusted
    proxy, the rightmost address in ``X-Forwarded-For`` that is not a trusted proxy (what lies
    left of it was written by the client and can be forged).  An IPv6 address counts as its
    /64: one subscriber's allocation, in which a host picks any address it likes."""
    peer = request.remote or "unknown"
    if not _is_trusted(peer, trusted):
        return _network(peer)
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return _network(hop)
    return _network(hops[0] if hops else peer)


def _network(address: str) -> str:
    try:
        parsed = ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def _is_trusted(address: str, trusted: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in trusted)


def request_token(request: web.Request) -> str | None:
    """The bearer token, else the ``chat_token`` cookie (never a service token there)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return session_cookie(request.headers.get("Cookie", ""))


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise invalid_request("the body must be JSON") from None
    if not isinstance(body, dict):
        raise invalid_request("the body must be a JSON object")
    return body


def health_routes(readiness: Readiness) -> list[web.RouteDef]:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(request: web.Request) -> web.Response:
        ready, detail = await readiness()
        return web.json_response({"ready": ready, **detail}, status=200 if ready else 503)

    return [web.get("/healthz", healthz), web.get("/readyz", readyz)]


def metrics_route(render: Callable[[], bytes], token: str = "") -> web.RouteDef:
    """``GET /metrics``; with ``token`` (CHAT_METRICS_TOKEN) only for its bearer."""
    expected = f"Bearer {token}".encode()

    async def metrics(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if token and not hmac.compare_digest(given, expected):
            raise unauthorized("/metrics needs its bearer token (CHAT_METRICS_TOKEN)")
        return web.Response(body=render(), content_type="text/plain", charset="utf-8")

    return web.get("/metrics", metrics)


async def start_metrics_listener(
    render: Callable[[], bytes], token: str, host: str, port: int
) -> web.AppRunner | None:
    """The metrics listener (CHAT_METRICS_PORT): an app of its own serving ``/metrics`` and
    nothing else (a second site of the main app would serve the whole API there too).  None
    when the port is 0, or taken: that is logged and the node serves on, since a node that
    refused to start over its metrics would turn a monitoring problem into an outage."""
    if not port:
        return None
    app = web.Application(middlewares=[security_headers, json_errors])
    app.add_routes([metrics_route(render, token)])
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        log.error("metrics port %s:%d: %s; /metrics is not served", host, port, exc.strerror)
        await runner.cleanup()
        return None
    log.info("serving /metrics on %s:%d", host, port)
    return runner


WEB_DIR = Path(__file__).resolve().parent.parent / "web"

#: Powerful features the page never uses, denied to it and to anything it could embed.
PERMISSIONS = (
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=(), bluetooth=(), "
    "midi=(), magnetometer=(), gyroscope=(), accelerometer=(), display-capture=(), "
    "screen-wake-lock=(), publickey-credentials-get=(), browsing-topics=()"
)
#: Browsers that saw the site over HTTPS refuse plain HTTP to it for a year (with
#: CHAT_COOKIE_SECURE, i.e. behind HTTPS; never sent otherwise, it would lock a site out).
HSTS = "max-age=31536000"
SERVER = "chat"

#: No inline scripts or styles, nothing from other origins, no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if response.content_type == "text/html":
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Permissions-Policy"] = PERMISSIONS
    if response.content_type == "text/html" or request.path.startswith("/static/"):
        # Revalidate (Last-Modified/304) so that a deploy never mixes old and new modules.
        response.headers["Cache-Control"] = "no-cache"
    return response


@web.middleware
async def strict_transport(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``Strict-Transport-Security`` on every answer; installed only with CHAT_COOKIE_SECURE."""
    response = await handler(request)
    response.headers["Strict-Transport-Security"] = HSTS
    return response


def hide_server_version() -> None:
    """Answer ``Server: chat`` instead of ``Python/3.x aiohttp/3.x``: versions only help an
    attacker pick an exploit.  Hazard: aiohttp fills the header from this module global for
    every response, even a 400 for an unparsable request that no middleware sees, so the
    global is what must change (tests/e2e/test_http_hardening.py checks it still works)."""
    web_response.SERVER_SOFTWARE = SERVER  # type: ignore[attr-defined]


def web_routes(web_dir: Path = WEB_DIR) -> list[web.RouteDef | web.StaticDef]:
    """The web client: the page at ``/``, its files under ``/static/``."""
    index = web_dir / "index.html"

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(index, headers={"Content-Type": "text/html; charset=utf-8"})

    return [web.get("/", page), web.static("/static", web_dir, follow_symlinks=False)]


@web.middleware
async def no_websocket_compression(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Decline permessage-deflate on Socket.IO websockets.

    Every compressed websocket keeps a zlib context of about 260 KiB on the server, for
    messages that are mostly shorter than compression pays for: ten times the memory of an
    idle connection.  Socket.IO's own server declines it by default for the same reason.
    Browsers offer it always; dropping the offer from the request makes aiohttp answer without.
    """
    if request.path.startswith(SOCKETIO_PATH) and "Sec-WebSocket-Extensions" in request.headers:
        headers = request.headers.copy()
        del headers["Sec-WebSocket-Extensions"]
        request = request.clone(headers=headers)
    return await handler(request)
