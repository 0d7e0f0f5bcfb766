"""HTTP hardening on real nodes: security headers, no server version, tokens never cached,
and /metrics only on the metrics listener (or for its bearer token)."""

from __future__ import annotations

import asyncio
import secrets
import socket
from urllib.parse import urlsplit

import aiohttp
import pytest
from stack import Stack, new_user_id, start_stack

from devstack.net import pick_free_ports
from devstack.nodes import ChatNodeProcess, node_env

#: Ways to spell /metrics that a careless router or proxy might still map to it.
METRICS_SPELLINGS = [
    "/metrics",
    "/metrics/",
    "//metrics",
    "/%6Detrics",
    "/./metrics",
    "/x/../metrics",
]


async def raw_get(url: str, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` exactly as written (client libraries normalise ``/./`` and ``%6D``)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    return await _answer(reader, writer)


async def _answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[int, dict[str, str], bytes]:
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    found = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        found[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), found, body


async def test_pages_and_errors_carry_the_security_headers_and_no_version(stack: Stack):
    status, headers, _ = await raw_get(stack.url(0), "/")
    assert status == 200
    for feature in ("camera=()", "microphone=()", "geolocation=()"):
        assert feature in headers["permissions-policy"]
    assert "strict-transport-security" not in headers  # plain HTTP here: never HSTS
    for path in ("/", "/healthz", "/api/me", "/no/such/page", "/socket.io/?EIO=4"):
        status, headers, _ = await raw_get(stack.url(0), path)
        assert headers["server"] == "chat", (path, headers)
    # Even an unparsable request, answered before any application code runs.
    parts = urlsplit(stack.url(0))
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(b"GARBAGE\x01 / HTTP/1.1\r\n\r\n")
    status, headers, _ = await _answer(reader, writer)
    assert status == 400 and headers["server"] == "chat"


async def test_answers_with_a_token_are_never_cached(stack: Stack):
    email, password = f"{new_user_id('h')}@example.com", f"Pw-{secrets.token_hex(8)}"
    body = {"email": email, "password": password}
    async with aiohttp.ClientSession() as http:
        for path, status in (("/api/register", 201), ("/api/login", 200), ("/user/", 409)):
            async with http.post(stack.url(1) + path, json=body) as resp:
                assert resp.status == status
                if status < 400:
                    assert resp.headers["Cache-Control"] == "no-store", path
        async with http.put(stack.url(0) + "/user/", json=body) as resp:
            assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"


async def test_metrics_are_only_on_the_metrics_listener(stack: Stack):
    for path in METRICS_SPELLINGS:
        status, _, body = await raw_get(stack.url(0), path)
        assert status == 404 and b"chat_connections" not in body, path
    node = stack.nodes[0]
    status, headers, body = await raw_get(node.metrics_url, "/metrics")
    assert status == 200 and b"chat_connections " in body
    assert headers["server"] == "chat"
    for path in ("/", "/healthz", "/api/me", "/static/app.js"):  # nothing else is served there
        assert (await raw_get(node.metrics_url, path))[0] == 404, path


@pytest.fixture(scope="module")
def guarded(redis_fleet, tmp_path_factory, jwt_secret):
    """A node behind HTTPS (CHAT_COOKIE_SECURE) with a metrics token."""
    token = secrets.token_urlsafe(32)
    log_dir = tmp_path_factory.mktemp("guarded")
    with start_stack(
        redis_fleet, log_dir, jwt_secret, nodes=1, cookie_secure="true", metrics_token=token
    ) as s:
        yield s, token


async def test_with_a_token_metrics_need_it_on_either_port(guarded):
    stack, token = guarded
    node = stack.nodes[0]
    for url in (stack.url(0), node.metrics_url):
        for path in METRICS_SPELLINGS:
            assert (await raw_get(url, path))[0] in (401, 404), (url, path)
        for wrong in ("", f"Bearer {token[:-1]}", f"bearer {token}x", token):
            assert (await raw_get(url, "/metrics", Authorization=wrong))[0] == 401
        status, _, body = await raw_get(url, "/metrics", Authorization=f"Bearer {token}")
        assert status == 200 and b"chat_connections " in body


async def test_behind_https_every_answer_has_hsts(guarded):
    stack, _ = guarded
    for path in ("/", "/healthz", "/api/me", "/nothing"):
        _, headers, _ = await raw_get(stack.url(0), path)
        assert headers["strict-transport-security"] == "max-age=31536000", path


def test_a_taken_metrics_port_is_logged_and_the_node_serves_on(redis_fleet, tmp_path, jwt_secret):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        env = node_env(redis_fleet.shards_env, redis_fleet.cluster_env, jwt_secret)
        env.update({f"CHAT_{k.upper()}": v for k, v in redis_fleet.node_options().items()})
        node = ChatNodeProcess(
            "squatted", pick_free_ports(1)[0], env, tmp_path / "node.log",
            metrics_port=squatter.getsockname()[1],
        )  # fmt: skip
        try:
            node.start()
            assert node.ready()
        finally:
            node.stop()
    assert "/metrics is not served" in (tmp_path / "node.log").read_text()


async def test_websockets_decline_compression_and_still_carry_socket_io(stack: Stack):
    """A browser always offers permessage-deflate; a compressed socket would keep ~260 KiB of
    zlib state on the server (CHAT_WS_COMPRESSION turns it on)."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(stack.url(0) + "/socket.io/?EIO=4&transport=websocket", compress=15) as ws,
    ):
        assert ws.compress == 0  # the offer was declined
        assert "Sec-WebSocket-Extensions" not in ws._response.headers
        opened = await ws.receive_str()  # the Engine.IO open packet: the socket works
        assert opened.startswith("0{") and '"sid"' in opened
