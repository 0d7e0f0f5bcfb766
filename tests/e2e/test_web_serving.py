"""The web client as a node serves it: a strict CSP, and every asset with its type."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from stack import Stack

WEB = Path(__file__).resolve().parents[2] / "chat" / "web"
OWN_SCRIPTS = sorted(WEB.glob("*.js"))


async def test_the_page_is_served_with_a_strict_csp(stack: Stack):
    async with aiohttp.ClientSession() as http, http.get(stack.url(0) + "/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        csp = response.headers["Content-Security-Policy"]
        body = await response.text()
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    directives = {}
    for part in csp.split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert 'src="/static/app.js"' in body


async def test_every_asset_is_served_with_its_type(stack: Stack):
    assets = {
        "/static/vendor/socket.io.min.js": "javascript",
        "/static/style.css": "text/css",
        "/static/favicon.svg": "image/svg+xml",
        **{f"/static/{script.name}": "javascript" for script in OWN_SCRIPTS},
    }
    async with aiohttp.ClientSession() as http:
        for path, kind in assets.items():
            async with http.get(stack.url(1) + path) as response:
                assert response.status == 200, path
                assert kind in response.content_type, (path, response.content_type)
                assert response.headers.get("X-Content-Type-Options") == "nosniff"
                body = await response.read()
            local = WEB / path.removeprefix("/static/")
            assert body == local.read_bytes(), path
