"""Sign-ins end to end, on two nodes of their own with 3-second access tokens: expiry of live
sockets, refresh with rotation and reuse detection, logout of one sign-in or of all, and what
the Redis Cluster keeps of a refresh token (a digest only)."""

from __future__ import annotations

import hashlib
import json
import secrets
import time

import aiohttp
import pytest
import redis
import socketio
from sioclient import Client, connected
from stack import Stack, new_user_id, register, start_stack
from test_examples import dm, echo_bot, reply_from

TTL = 3  # seconds an access token lives on these nodes
ADDRESS_RATE = 20  # refreshes per minute per client address


@pytest.fixture(scope="module")
def short(redis_fleet, tmp_path_factory, jwt_secret):
    with start_stack(
        redis_fleet,
        tmp_path_factory.mktemp("sessions"),
        jwt_secret,
        nodes=2,
        token_ttl=str(TTL),
        refresh_rate=str(ADDRESS_RATE),
        trusted_proxies="127.0.0.1/32",  # each test is its own client address
        login_ip_rate="100000",
    ) as stack:
        yield stack


def address() -> str:
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


async def post(url: str, body=None, *, token=None, ip: str, http=None):
    """POST as the client at ``ip``: ``(status, json body, response)``."""
    headers = {"X-Forwarded-For": ip, **({"Authorization": f"Bearer {token}"} if token else {})}
    own = http is None
    http = http or aiohttp.ClientSession()
    try:
        async with http.post(url, json=body, headers=headers) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None), resp
    finally:
        if own:
            await http.close()


async def me(url: str, token: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(url + "/api/me", headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        return resp.status


async def sign_up(stack: Stack, ip: str) -> tuple[dict, dict]:
    """A fresh account: its credentials and the register answer."""
    creds = {"email": f"{new_user_id('s')}@example.com", "password": f"Pw-{secrets.token_hex(8)}"}
    status, body, resp = await post(stack.url(0) + "/api/register", creds, ip=ip)
    assert status == 201 and resp.headers["Cache-Control"] == "no-store"
    assert {"user", "token", "refresh_token", "expires_in"} <= set(body)
    return creds, body


async def refresh(stack: Stack, node: int, refresh_token: str, ip: str):
    return await post(stack.url(node) + "/api/refresh", {"refresh_token": refresh_token}, ip=ip)


async def test_a_socket_whose_token_expires_is_told_why_and_disconnected_on_either_node(
    short: Stack,
):
    ip = address()
    _, signed = await sign_up(short, ip)
    issued = time.time()
    async with (
        connected(short.url(0), signed["token"]) as a,
        connected(short.url(1), signed["token"]) as b,
    ):
        for socket in (a, b):
            await socket.next("session")
        for socket in (a, b):  # waiting out the token's lifetime is the behaviour under test
            ended = await socket.next("session_end", timeout=TTL + 5)
            assert ended["code"] == "token_expired" and ended["message"]
            assert await socket.next("__disconnect__") == "server disconnect"
        assert time.time() - issued >= TTL - 1  # not before its time
        # What a client does then: refresh, and connect again without a password.
        status, renewed, _ = await refresh(short, 1, signed["refresh_token"], ip)
        assert status == 200
        async with connected(short.url(1), renewed["token"]) as again:
            assert (await again.next("session"))["user"]["id"] == signed["user"]["id"]
    refused = Client()  # a token past its expiry is refused at connect, with the reason
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(short.url(0), signed["token"])
    assert refused.connect_error["reason"] == "token_expired"


async def test_refresh_rotates_and_a_reused_refresh_token_ends_the_whole_sign_in(short: Stack):
    ip = address()
    _, first = await sign_up(short, ip)
    status, second, resp = await refresh(short, 0, first["refresh_token"], ip)
    assert status == 200 and resp.headers["Cache-Control"] == "no-store"
    assert second["user"] == first["user"] and second["expires_in"] == TTL
    assert second["token"] != first["token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert {"chat_token", "chat_refresh"} <= set(resp.cookies)
    status, third, _ = await refresh(short, 1, second["refresh_token"], ip)
    assert status == 200
    # Two tabs refreshing at once with one cookie: the previous secret, seconds after its
    # rotation, gets an access token and no refresh token (the browser has the newer one).
    status, concurrent, resp = await refresh(short, 0, second["refresh_token"], ip)
    assert status == 200 and "refresh_token" not in concurrent
    assert "chat_refresh" not in resp.cookies and await me(short.url(0), concurrent["token"]) == 200

    async with connected(short.url(1), third["token"]) as socket:
        await socket.next("session")
        status, body, resp = await refresh(short, 0, first["refresh_token"], ip)  # a reuse
        assert (status, body["error"]["code"], body["error"]["reason"]) == (
            401,
            "unauthorized",
            "token_revoked",
        )
        assert resp.cookies["chat_refresh"].value == ""  # cleared
        assert (await socket.next("session_end"))["code"] == "token_revoked"
    status, _, _ = await refresh(short, 1, third["refresh_token"], ip)
    assert status == 401  # the newest one died with its family ...
    assert await me(short.url(0), third["token"]) == 401  # ... and so did its access tokens


async def test_a_made_up_secret_for_a_live_sign_in_is_refused_and_ends_nothing(short: Stack):
    """Only a secret the sign-in issued counts as a reuse: someone who learns a user id and a
    family id must not be able to sign the owner out with invented secrets."""
    ip = address()
    _, first = await sign_up(short, ip)
    user, family, _ = first["refresh_token"].split(".")
    for _ in range(3):
        status, body, _ = await refresh(short, 0, f"{user}.{family}.{'A' * 43}", ip)
        assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert await me(short.url(1), first["token"]) == 200
    latest = first
    for node in (1, 0, 1):  # three rotations: the first secret is long retired
        status, latest, _ = await refresh(short, node, latest["refresh_token"], ip)
        assert status == 200 and "refresh_token" in latest
    status, body, _ = await refresh(short, 0, first["refresh_token"], ip)  # a late reuse
    assert (status, body["error"]["reason"]) == (401, "token_revoked")
    assert await me(short.url(1), latest["token"]) == 401


async def test_logout_ends_the_sign_in_and_clears_both_cookies(short: Stack):
    ip = address()
    creds, _ = await sign_up(short, ip)
    jar = aiohttp.CookieJar(unsafe=True)  # unsafe: cookies for an IP address host
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        status, _, resp = await post(short.url(0) + "/api/login", creds, ip=ip, http=browser)
        assert status == 200 and resp.headers["Cache-Control"] == "no-store"
        cookie = resp.cookies["chat_refresh"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert cookie["path"] == "/api/refresh" and int(cookie["max-age"]) == 14 * 24 * 3600
        # The web client's way: no body, the cookies only.
        status, renewed, _ = await post(short.url(0) + "/api/refresh", ip=ip, http=browser)
        assert status == 200
        status, _, resp = await post(short.url(1) + "/api/logout", ip=ip, http=browser)
        assert status == 204
        assert resp.cookies["chat_token"].value == "" and resp.cookies["chat_refresh"].value == ""
        assert resp.cookies["chat_refresh"]["path"] == "/api/refresh"
    status, body, _ = await refresh(short, 1, renewed["refresh_token"], ip)
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert await me(short.url(0), renewed["token"]) == 401


async def test_logout_everywhere_ends_every_sign_in_and_socket_on_every_node(short: Stack):
    ip = address()
    creds, here = await sign_up(short, ip)
    _, there, _ = await post(short.url(1) + "/api/login", creds, ip=ip)
    async with (
        connected(short.url(0), here["token"]) as a,
        connected(short.url(1), there["token"]) as b,
    ):
        await a.next("session")
        await b.next("session")
        status, _, _ = await post(
            short.url(0) + "/api/logout", {"everywhere": True}, token=here["token"], ip=ip
        )
        assert status == 204
        for socket in (a, b):
            assert (await socket.next("session_end"))["code"] == "token_revoked"
            assert await socket.next("__disconnect__") == "server disconnect"
    for signed in (here, there):
        assert (await refresh(short, 0, signed["refresh_token"], ip))[0] == 401
        assert await me(short.url(1), signed["token"]) == 401
    _, again, _ = await post(short.url(1) + "/api/login", creds, ip=ip)  # a new sign-in works
    assert await me(short.url(0), again["token"]) == 200
    status, body, _ = await post(
        short.url(0) + "/api/logout", {"everywhere": "yes"}, token=again["token"], ip=ip
    )
    assert (status, body["error"]["code"]) == (400, "invalid_request")


async def test_the_cluster_keeps_refresh_tokens_as_digests_only(short: Stack):
    _, signed = await sign_up(short, address())
    user_id, secret = signed["user"]["id"], signed["refresh_token"].rsplit(".", 1)[1]
    key = f"{{u:{user_id}}}:refresh"
    master = short.fleet.master_for_key(key)
    with redis.Redis(host=master.host, port=master.port, decode_responses=True) as r:
        stored = {name: read(r, name) for name in r.scan_iter(match=f"{{u:{user_id}}}*")}
    assert key in stored
    text = repr(stored)
    assert secret not in text and signed["refresh_token"] not in text
    assert hashlib.sha256(secret.encode()).hexdigest() in text


def read(r: redis.Redis, name: str) -> object:
    kind = r.type(name)
    readers = {"hash": r.hgetall, "string": r.get, "set": r.smembers, "list": r.lrange}
    if kind == "zset":
        return r.zrange(name, 0, -1, withscores=True)
    if kind == "list":
        return r.lrange(name, 0, -1)
    return readers[kind](name)


async def test_refresh_is_limited_per_client_address_and_per_sign_in(short: Stack):
    ip = address()
    _, signed = await sign_up(short, ip)
    token = signed["refresh_token"]
    statuses = []
    for _ in range(11):  # 10 a minute per sign-in
        status, body, resp = await refresh(short, len(statuses) % 2, token, ip)
        statuses.append(status)
        token = body["refresh_token"] if status == 200 else token
    assert statuses == [200] * 10 + [429] and int(resp.headers["Retry-After"]) >= 1
    flood = address()
    statuses = [(await refresh(short, i % 2, junk(), flood))[0] for i in range(ADDRESS_RATE + 1)]
    assert statuses == [401] * ADDRESS_RATE + [429]
    assert (await refresh(short, 0, junk(), address()))[0] == 401  # another address is not


def junk() -> str:
    return f"nobody.{secrets.token_hex(8)}.{secrets.token_hex(16)}"


async def test_the_echo_bot_renews_its_token_with_the_refresh_token_not_its_password(
    short: Stack,
):
    urls = [short.url(0), short.url(1)]
    async with echo_bot(urls) as (bot, _, bot_id):
        await bot.line("session ended by the server: token_expired", timeout=TTL + 10)
        await bot.line(r"refreshed: ")
        await bot.line(rf"ready on {urls[1]} ")
        user = await register(short.url(0))
        async with connected(short.url(0), user.token) as client:
            await dm(client, bot_id, "still there?")
            assert (await reply_from(client, bot, bot_id))["text"] == "echo: still there?"
        assert bot.count(r"(registered|logged in): ") == 1, bot.output()
